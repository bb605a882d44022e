"""Pruning: schedules, criteria (one file each), masks, unit groups and structured compaction.

The callback that runs a schedule during training is :class:`peftlab.callbacks.pruning.PruningCallback`;
the export recipe is :mod:`peftlab.export`.
"""

from peftlab.pruning.reparametrization import restore_pruning_reparam
from peftlab.pruning.schedules import Schedule

__all__ = ["Schedule", "restore_pruning_reparam"]
