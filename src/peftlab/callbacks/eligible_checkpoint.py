"""A ModelCheckpoint whose "best" is chosen only among checkpoints other callbacks call eligible.

Why: metrics.json's test numbers, parameter counts and sparsity must describe the same weights,
so a pruning run's "best" checkpoint has to be one at the final sparsity. Lightning has no switch
for "not eligible yet"; this subclass overrides ModelCheckpoint's public ``check_monitor_top_k``
(the decision whether the current score enters the top k) and asks every callback that has a
``best_checkpoint_eligible(trainer) -> bool`` method. Checkpoints without a monitor (last.ckpt,
what a killed run resumes from) are not affected.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class EligibleModelCheckpoint(ModelCheckpoint):
    """Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (same arguments) whose top-k
    ranking skips a save while any callback's ``best_checkpoint_eligible(trainer)`` is False
    (e.g. :class:`peftlab.callbacks.pruning.PruningCallback` before its final sparsity)."""

    def check_monitor_top_k(self, trainer: L.Trainer, current: Optional[Tensor] = None) -> bool:
        """Lightning's decision, vetoed while some callback says the weights are not eligible yet."""
        for callback in trainer.callbacks:
            eligible = getattr(callback, "best_checkpoint_eligible", None)
            if callable(eligible) and not eligible(trainer):
                return False  # the same on every rank: the vetoing state is identical across ranks
        return super().check_monitor_top_k(trainer, current)
