"""Step checkpoints: every n optimizer steps, never on an epoch's last batch (the epoch-end hooks
have not run yet), never again at the step a run resumed from."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest

from peftlab.train import train

QUIET = ["callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "+trainer.limit_train_batches=4", "callbacks.step_checkpoint.every_n_train_steps=1"]


@pytest.fixture
def step_saves(monkeypatch) -> list[tuple[int, int]]:
    """(global step, batch index) of every save made by StepCheckpoint."""
    saves: list[tuple[int, int]] = []
    original = L.Trainer.save_checkpoint

    def recording(self, filepath, *args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__") == "peftlab.callbacks.step_checkpoint":
            saves.append((self.global_step, self.fit_loop.epoch_loop.batch_progress.current.ready - 1))
        return original(self, filepath, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", recording)
    return saves


def test_saves_every_step_but_the_epochs_last_batch(make_cfg, step_saves):
    train(make_cfg(*QUIET, "trainer.max_epochs=2", fast=False))
    assert step_saves == [(1, 0), (2, 1), (3, 2), (5, 0), (6, 1), (7, 2)]


def test_with_accumulation_saves_once_per_optimizer_step(make_cfg, step_saves):
    train(make_cfg(*QUIET, "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2", fast=False))
    assert step_saves == [(1, 1), (3, 1)]  # steps 2 and 4 end an epoch


def test_no_save_at_the_step_a_run_resumes_from(make_cfg, step_saves, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # tests/: kill_helpers
    crashing = make_cfg(*QUIET, "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2", "+callbacks.crash._target_=kill_helpers.RaiseAtStep", "+callbacks.crash.step=3", fast=False)
    with pytest.raises(RuntimeError, match="crashed after step 3"):
        train(crashing)
    assert step_saves == [(1, 1), (3, 1)]
    step_saves.clear()
    last = Path(crashing.paths.output_dir) / "checkpoints" / "last.ckpt"
    train(make_cfg(*QUIET, "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2", f"ckpt_path={last}", fast=False))
    assert step_saves == []  # resumed at step 3 (batch 1 of epoch 1); step 4 ends the epoch
