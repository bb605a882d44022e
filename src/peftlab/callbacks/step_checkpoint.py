"""``last.ckpt`` every n optimizer steps, mid-epoch, for exact resume of a killed job.

Lightning's ``ModelCheckpoint(every_n_train_steps=n)`` almost does this, but (1) it also saves on
an epoch's last batch, before the epoch's end hooks (validation, DWA's epoch update, the epoch's
LR step) have run, and a resume from that file counts the epoch as finished and skips them; (2)
the step it last saved is not checkpointed, so right after a resume inside an accumulation window
it saves again with the window half done. This callback saves through the public
``trainer.save_checkpoint`` only at the end of a batch that completed an optimizer step and is
not an epoch's last batch (the epoch-end ``last.ckpt`` of ``callbacks/last_checkpoint`` covers that one), and never
at the step the run resumed from.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L


class StepBoundaryCallback(L.Callback):
    """Base for callbacks that act only where a resume would be exact: at the end of a batch that
    completed an optimizer step (not inside an accumulation window) and is not an epoch's last batch
    (whose epoch-end hooks have not run yet)."""

    step_before = -1  # optimizer steps when the current batch started

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        """Remember the step count, to tell whether this batch completed an optimizer step."""
        self.step_before = trainer.global_step

    def at_step_boundary(self, trainer: L.Trainer) -> bool:
        """Whether the batch ending now completed an optimizer step and is not its epoch's last."""
        return trainer.global_step != self.step_before and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch


class StepCheckpoint(StepBoundaryCallback):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` optimizer steps (0: never)."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 0, filename: str = "last"):
        if isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int) or every_n_train_steps < 0:
            from peftlab.errors import ConfigError

            raise ConfigError("callbacks.step_checkpoint.every_n_train_steps", f"must be an integer >= 0 (0: off); got {every_n_train_steps!r}")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every = every_n_train_steps
        self.last_saved = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The step the run starts (or resumes) at is already on disk."""
        self.last_saved = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        """Save after every n-th optimizer step (all ranks call save_checkpoint; rank 0 writes)."""
        step = trainer.global_step
        if not self.every or step == self.last_saved or step % self.every or not self.at_step_boundary(trainer):
            return  # (an epoch's last batch: the epoch-end checkpoint follows once the epoch's hooks have run)
        self.last_saved = step
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state (optimizer, loops); said, so Lightning does not log "weights_only was not set"
