"""The learning rate of every param group, logged to every logger."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor


class LearningRateLogger(LearningRateMonitor):
    """Lightning's :class:`~lightning.pytorch.callbacks.LearningRateMonitor` (``lr-<Optimizer>``,
    ``lr-<Optimizer>/pg<i>`` per param group), except that a run without loggers (``logger=null``)
    trains instead of stopping: there is nowhere to log to, so it does nothing."""

    def on_train_start(self, trainer, *args: Any, **kwargs: Any) -> None:
        """Name the series (Lightning's logic), unless the run has no logger."""
        self.enabled = bool(trainer.loggers)
        if self.enabled:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer, *args: Any, **kwargs: Any) -> None:
        """Log per step (every ``trainer.log_every_n_steps``)."""
        if getattr(self, "enabled", False):
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer, *args: Any, **kwargs: Any) -> None:
        """Log per epoch."""
        if getattr(self, "enabled", False):
            super().on_train_epoch_start(trainer, *args, **kwargs)
