"""SLURM's warning signal (``--signal=USR1@90``): finish the step, write last.ckpt, requeue.

Lightning's own handler (``SLURMEnvironment(auto_requeue=True)``) saves a checkpoint inside the
signal handler, i.e. wherever the signal lands: in the middle of a forward, after the optimizer
step but before the batch's bookkeeping, inside an accumulation window, or on an epoch's last
batch before the epoch-end hooks. A run resumed from such a file is not the run that would have
gone on. This callback only sets a flag in the handler; at the end of the next batch that
completed an optimizer step (and is not an epoch's last batch) every rank agrees through one
small all-reduce, ``last.ckpt`` is written as a step checkpoint would be (exact resume), rank 0
runs ``scontrol requeue`` and the job waits for SLURM's SIGTERM
(:mod:`peftlab.runs.slurm_signals` turns it into a quiet exit). The requeued job resumes from its
run directory (:mod:`peftlab.runs.auto_resume`). ``train.py`` turns Lightning's handler off
whenever this one is on (:func:`lightning_slurm_plugins`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment

from peftlab.callbacks.step_checkpoint import StepBoundaryCallback

log = logging.getLogger(__name__)


def under_slurm() -> bool:
    """Whether this process is a SLURM batch job's task (Lightning's own test, public API)."""
    return bool(os.environ.get("SLURM_JOB_ID")) and SLURMEnvironment.detect()


def lightning_slurm_plugins() -> list:
    """Under SLURM: Lightning's SLURM environment without its in-handler checkpoint and requeue."""
    return [SLURMEnvironment(auto_requeue=False)] if under_slurm() else []


class RequeueOnSignal(StepBoundaryCallback):
    """On SIGUSR1 under SLURM: write ``<dirpath>/last.ckpt`` at the next step boundary and requeue the job."""

    def __init__(self, dirpath: str | Path, wait_s: float = 300.0):
        self.path = Path(dirpath) / "last.ckpt"
        self.wait_s = wait_s  # how long to wait for SLURM's SIGTERM after requeueing
        self.requested = False
        self.active = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Install the flag-setting USR1 handler (training under SLURM only)."""
        if stage == "fit" and under_slurm():
            signal.signal(signal.SIGUSR1, self._request)
            self.active = True

    def _request(self, signum, _frame) -> None:
        # only a flag: logging or I/O here can deadlock on a lock the interrupted code holds (e.g. a
        # stdout wrapper's, as W&B installs)
        self.requested = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        """At a step boundary: if any rank got the signal, all save and rank 0 requeues."""
        if not self.active or not self.at_step_boundary(trainer):
            return
        flag = trainer.strategy.reduce(torch.tensor(float(self.requested), device=pl_module.device), reduce_op="sum")
        if float(flag) == 0:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state (optimizer, loops); said, so Lightning does not log "weights_only was not set"
        requeued = self._requeue(trainer.global_step) if trainer.is_global_zero else False
        if not trainer.strategy.broadcast(requeued, src=0):
            self.requested = False  # (rank 0 logged why) the checkpoint is written; training goes on
            return
        deadline = time.monotonic() + self.wait_s  # SLURM now sends SIGTERM to every task of the job
        while time.monotonic() < deadline:
            time.sleep(1)
        raise SystemExit(0)

    def _requeue(self, step: int) -> bool:
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
        log.info("SLURM's USR1: wrote %s at step %d; requeueing job %s", self.path, step, job)
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if result.returncode != 0:
            log.error("scontrol requeue %s failed (%s); training goes on", job, result.stderr.strip())
        return result.returncode == 0
