"""Pruning: callbacks, schedules, criteria and export."""

from peftlab.pruning.callback import PruningCallback
from peftlab.pruning.reparam import restore_pruning_reparam
from peftlab.pruning.schedules import Schedule

__all__ = ["PruningCallback", "Schedule", "restore_pruning_reparam"]
