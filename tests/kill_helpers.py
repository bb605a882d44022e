"""A callback that SIGKILLs its own process at a chosen optimizer step (a real, unannounced death)."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process before the batch that follows optimizer step ``step``.

    Checkpoint callbacks run at the end of a batch, so the step-``step`` checkpoint is on disk
    when the kill comes; nothing after it (no epoch end, no cleanup) runs.
    """

    def __init__(self, step: int):
        self.step = int(step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Die once training has reached ``step``."""
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RaiseAtStep(L.Callback):
    """Raise :class:`RuntimeError` before the batch that follows optimizer step ``step`` (an in-process crash)."""

    def __init__(self, step: int):
        self.step = int(step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Crash once training has reached ``step``."""
        if trainer.global_step >= self.step:
            raise RuntimeError(f"crashed after step {self.step}")
