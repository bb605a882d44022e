"""Pruning: callbacks, schedules, criteria and export."""

from peftlab.pruning.reparam import restore_pruning_reparam

__all__ = ["restore_pruning_reparam"]
