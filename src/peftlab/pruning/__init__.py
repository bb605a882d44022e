"""Pruning: schedules, criteria (one file each), masks, unit groups and structured compaction.

What one schedule prunes (targets, unit groups, masks, updates) is
:class:`~peftlab.pruning.pruned_weights.PrunedWeights`, where it stands
:class:`~peftlab.pruning.progress.ScheduleProgress`; adapters wrapping a pruned base layer are
gated by :mod:`peftlab.pruning.adapter_gates`. Pruning never reads adapter names: the callers
pass what the body says (``PolicyBody.adapter_layers()``/``adapter_modules()``). The callback that
runs a schedule during training is :class:`peftlab.callbacks.pruning.PruningCallback`; the
export recipe is :mod:`peftlab.export`.
"""

from peftlab.pruning.reparametrization import restore_pruning_reparam
from peftlab.pruning.schedules import Schedule

__all__ = ["Schedule", "restore_pruning_reparam"]
