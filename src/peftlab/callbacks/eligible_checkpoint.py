"""A ModelCheckpoint whose "best" is chosen only among checkpoints other callbacks call eligible.

Why: metrics.json's test numbers, parameter counts and sparsity must describe the same weights,
so a pruning run's "best" checkpoint has to be one at the final sparsity. Lightning has no switch
for "not eligible yet"; this subclass overrides ModelCheckpoint's public ``check_monitor_top_k``
(the decision whether the current score enters the top k) and asks every callback that has a
``best_checkpoint_eligible(trainer) -> bool`` method. Checkpoints without a monitor (last.ckpt,
what a killed run resumes from) are not affected.

At the end of fit, a best checkpoint saved at the same step as ``last.ckpt`` becomes a hard link
to it (:mod:`peftlab.callbacks.checkpoint_links`): one copy of the bytes, both names still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from peftlab.callbacks.checkpoint_links import share_if_same_step


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

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's end of fit, then one file for best and last when they hold the same step."""
        super().on_train_end(trainer, pl_module)
        if not trainer.is_global_zero or not self.best_model_path:
            return
        # last.ckpt: kept by a ModelCheckpoint without a monitor (callbacks/last_checkpoint), or save_last
        recent = [c.best_model_path or c.last_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c is not self and not c.monitor]
        lasts = [p for p in [*recent, self.last_model_path] if p]
        for last in lasts:
            if share_if_same_step(self.best_model_path, last):
                rank_zero_info(f"{Path(self.best_model_path).name} holds the same step as {Path(last).name}: stored once (a hard link)")
                return
