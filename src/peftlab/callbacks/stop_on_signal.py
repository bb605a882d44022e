"""Outside SLURM, SIGTERM and SIGINT (Ctrl+C) stop training at the next step boundary, honestly.

Lightning's own SIGTERM handling ends ``fit`` with ``SIGTERMException``, a ``SystemExit`` whose
code is None: the process exits 0 and ``train.py … && next`` runs ``next`` on an unfinished run.
Its Ctrl+C path exits 1 without a checkpoint. This callback replaces both handlers for the time
of training with one that only sets a flag (I/O in a handler can deadlock on a lock the
interrupted code holds); at the end of the next batch that completed an optimizer step and is not
an epoch's last batch (or, failing that, at the start of the next epoch when the epoch-end
``last.ckpt`` holds the current step), every rank agrees (one small all-reduce under DDP), ``last.ckpt`` is
written as a step checkpoint would be (exact resume), and :class:`RunInterrupted` ends the run
before the next batch starts (after Lightning logged the last batch's metrics).
The command line (``peftlab.cli``) records ``status: "interrupted"`` in metrics.json and exits
with 128 + the signal number (143 for SIGTERM, 130 for SIGINT). A second signal stops at once,
leaving the last checkpoint already on disk. Under SLURM, ``callbacks/slurm_requeue.py`` and
``runs/slurm_signals.py`` handle signals instead (requeue), and this callback stays inactive.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import torch

from peftlab.callbacks.step_checkpoint import StepBoundaryCallback

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
    """Training stopped on a signal; ``ckpt_path`` (None if nothing was saved yet) resumes it."""

    def __init__(self, signum: int, epoch: int, global_step: int, ckpt_path: str | None, ckpt_step: int | None):
        self.signum, self.epoch, self.global_step, self.ckpt_path, self.ckpt_step = signum, epoch, global_step, ckpt_path, ckpt_step
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"{self.signal_name} at epoch {epoch}, global step {global_step}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class StopOnSignal(StepBoundaryCallback):
    """On SIGTERM / SIGINT outside SLURM: write ``<dirpath>/last.ckpt`` at the next step boundary and raise :class:`RunInterrupted`."""

    def __init__(self, dirpath: str | Path):
        self.path = Path(dirpath) / "last.ckpt"
        self.signum: int | None = None
        self.active = False
        self._trainer: L.Trainer | None = None
        self._previous: dict[int, object] = {}
        self._stop: RunInterrupted | None = None  # raised before the batch after the checkpoint

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the flag-setting handlers (after Lightning installed its own, which they replace until teardown)."""
        if os.environ.get("SLURM_JOB_ID"):
            return  # SLURM: requeue on USR1, quiet exit on SIGTERM (runs/slurm_signals.py)
        self._trainer = trainer
        self._previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, self._request)
        self.active = True

    def _request(self, signum, _frame) -> None:
        if self.signum is not None:  # a second signal: stop now, from the checkpoint already on disk
            raise self._interruption(signum, saved_now=False)
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        """At a step boundary: if any rank got a signal, all save last.ckpt and stop."""
        if not self.active or not self.at_step_boundary(trainer):
            return
        signum = float(self.signum or 0)
        if trainer.world_size > 1:  # ranks agree on stopping (one got the signal, or all did)
            signum = float(trainer.strategy.reduce(torch.tensor(signum, device=pl_module.device), reduce_op="max"))
        if signum == 0:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state (optimizer, loops); said, so Lightning does not log "weights_only was not set"
        self._stop = self._interruption(int(signum), saved_now=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A signal that came during an epoch's last step, validation or epoch end (or a run whose every
        step ends an epoch): stop here when the epoch-end ``last.ckpt`` holds this very step (exact resume)."""
        if not self.active:
            return
        signum = float(self.signum or 0)
        if trainer.world_size > 1:
            signum = float(trainer.strategy.reduce(torch.tensor(signum, device=pl_module.device), reduce_op="max"))
        if signum and _saved_step(self.path if self.path.is_file() else None) == trainer.global_step:
            raise self._interruption(int(signum), saved_now=False)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        """Stop before the next batch, once the batch that wrote the checkpoint has logged its metrics."""
        if self._stop is not None:
            raise self._stop
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def _interruption(self, signum: int, saved_now: bool) -> RunInterrupted:
        trainer = self._trainer
        step = trainer.global_step
        ckpt = self.path if self.path.is_file() else None
        ckpt_step = step if saved_now else _saved_step(ckpt)
        return RunInterrupted(signum, trainer.current_epoch, step, str(ckpt) if ckpt else None, ckpt_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Give the signals back (to Lightning's handler, which its teardown then replaces by the original)."""
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Training ended with an exception (this one's included): give the signals back."""
        self._restore()

    def _restore(self) -> None:
        if self.active:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self.active = False


def _saved_step(ckpt: Path | None) -> int | None:
    """The global step stored in ``ckpt`` (None without one, or when it cannot be read)."""
    if ckpt is None:
        return None
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # a second signal must still end the run; the record then omits the step
        return None
