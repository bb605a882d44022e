"""Progress that reads well in a log file: a plain line every N steps and one per epoch.

A progress bar redraws one terminal line; written to a file (``python train.py > run.log``,
SLURM's output file) it leaves either nothing until the end or thousands of carriage-return
frames. :class:`LogProgress` is a Lightning ``ProgressBar`` (so Lightning adds no tqdm bar of
its own) that prints plain lines instead::

    epoch 1/3  step 40/120 (33%)  batch 40/40  loss 0.4123  11.8 it/s  ETA 0:00:07
    epoch 1/3 done in 3.4 s  loss 0.4123  val/score 0.9012

Epochs are counted from 1 in what it prints. :func:`progress_for_output` picks the rich bar
when stdout is a terminal and these lines otherwise (``configs/callbacks/progress_bar.yaml``).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from peftlab.validators import check_int


class LogProgress(ProgressBar):
    """Plain progress lines: every ``every_n_steps`` training batches, and at the end of each epoch
    (with the validation score when there is one).

    Args:
        every_n_steps: training batches between two lines (>= 1).
    """

    def __init__(self, every_n_steps: int = 50):
        super().__init__()
        self.every_n_steps = check_int("callbacks.progress_bar.every_n_steps", every_n_steps, minimum=1)
        self._enabled = True
        self._epoch_start = 0.0
        self._fit_start: float | None = None
        self._batches_done = 0  # training batches since fit started (this process), for speed and ETA

    def disable(self) -> None:
        """Print nothing (Lightning calls this on ranks other than zero)."""
        self._enabled = False

    def enable(self) -> None:
        """Print again."""
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        """Whether lines are printed."""
        return self._enabled

    def _epochs(self, trainer: L.Trainer) -> str:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        return f"epoch {trainer.current_epoch + 1}/{total}"

    def _loss(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        metrics = self.get_metrics(trainer, pl_module)
        loss = metrics.get("train/loss")
        return f"  loss {float(loss):.4f}" if isinstance(loss, (int, float)) else ""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock."""
        self._fit_start = time.perf_counter()
        self._batches_done = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the epoch's clock."""
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Every ``every_n_steps`` batches: epoch, step/total, loss, speed and time left."""
        self._batches_done += 1
        if not self._enabled or (batch_idx + 1) % self.every_n_steps:
            return
        elapsed = time.perf_counter() - (self._fit_start or self._epoch_start)
        rate = self._batches_done / elapsed if elapsed > 0 else 0.0
        per_epoch = self.total_train_batches
        line = f"{self._epochs(trainer)}  step {trainer.global_step}"
        total_steps = trainer.estimated_stepping_batches
        if isinstance(total_steps, (int, float)) and total_steps != float("inf") and total_steps > 0:
            line += f"/{int(total_steps)} ({trainer.global_step / total_steps:.0%})"
        line += f"  batch {batch_idx + 1}/{per_epoch if per_epoch != float('inf') else '?'}"
        line += self._loss(trainer, pl_module) + f"  {rate:.1f} it/s"
        remaining = self._remaining_batches(trainer, batch_idx)
        if remaining is not None and rate > 0:
            line += f"  ETA {datetime.timedelta(seconds=round(remaining / rate))}"
        self.print(line, flush=True)

    def _remaining_batches(self, trainer: L.Trainer, batch_idx: int) -> float | None:
        """Training batches left in the run (None when the budget is unknown)."""
        per_epoch = self.total_train_batches
        if per_epoch == float("inf") or not trainer.max_epochs or trainer.max_epochs < 0:
            return None
        left = per_epoch - (batch_idx + 1) + per_epoch * (trainer.max_epochs - trainer.current_epoch - 1)
        if trainer.max_steps and trainer.max_steps > 0:
            left = min(left, (trainer.max_steps - trainer.global_step) * trainer.accumulate_grad_batches)
        return max(0, left)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One line per epoch: its wall time, the last loss and the validation score (when validated)."""
        if not self._enabled or trainer.sanity_checking:
            return
        line = f"{self._epochs(trainer)} done in {time.perf_counter() - self._epoch_start:.1f} s" + self._loss(trainer, pl_module)
        score = trainer.callback_metrics.get("val/score")
        if score is not None:
            line += f"  val/score {float(score):.4f}"
        self.print(line, flush=True)


def progress_for_output(every_n_steps: int = 50, leave: bool = False) -> ProgressBar:
    """Lightning's rich bar when stdout is a terminal; :class:`LogProgress` lines when it is a file or a pipe.

    Args:
        every_n_steps: batches between two plain lines (log files only).
        leave: keep finished epoch bars on the terminal (rich bar only).
    """
    if sys.stdout.isatty():
        return RichProgressBar(leave=leave)
    return LogProgress(every_n_steps=every_n_steps)
