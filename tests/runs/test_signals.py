"""Outside SLURM a signal ends a run honestly: SIGTERM exits 143 and SIGINT 130 (not 0), metrics.json
says ``status: "interrupted"`` with where it stopped and the checkpoint written there, one line says
so, and the same command again resumes and ends ``completed`` with the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from peftlab.train import train

pytestmark = pytest.mark.slow

RUN = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.max_epochs=3",
    "++trainer.limit_train_batches=4",
    "callbacks.step_checkpoint.every_n_train_steps=2",
]
HELPER = "+callbacks.signal_at_step._target_=signal_helpers.SignalAtStep"  # sends $PEFTLAB_TEST_SIGNAL (tests/runs/signal_helpers.py)


def run_train(run_dir: Path, signal_spec: str | None = None) -> subprocess.CompletedProcess:
    """``train.py`` with the test's overrides into ``run_dir``; ``signal_spec`` (``SIGTERM@5``) signals it."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "runs"), os.environ.get("PYTHONPATH", "")])}
    env.pop("PEFTLAB_TEST_SIGNAL", None)
    if signal_spec:
        env["PEFTLAB_TEST_SIGNAL"] = signal_spec
    cmd = [sys.executable, str(ROOT / "train.py"), *RUN, HELPER, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_exits_non_zero_and_records_where_it_stopped(tmp_path, name, code):
    run_dir = tmp_path / "run"
    proc = run_train(run_dir, f"{name}@5")  # arrives before the batch after step 5; stops after step 6 (mid-epoch 1)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("interrupted:")]
    assert lines == [f"interrupted: {name} at epoch 1, global step 6; {ckpt} (step 6) resumes it: run the same command again"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["ckpt_path"] == str(ckpt)
    assert metrics["stopped"] == {"signal": name, "epoch": 1, "global_step": 6, "ckpt_step": 6}
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 6


def test_a_signal_when_every_step_ends_an_epoch_stops_at_the_next_epoch_start(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled", "PEFTLAB_TEST_SIGNAL": "SIGTERM@1", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "runs"), os.environ.get("PYTHONPATH", "")])}
    args = [a for a in RUN if "limit_train_batches" not in a] + ["++trainer.limit_train_batches=1"]
    cmd = [sys.executable, str(ROOT / "train.py"), *args, HELPER, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    # the signal arrives before step 2's batch, which ends epoch 1; its epoch-end last.ckpt holds step 2
    assert proc.returncode == 143, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["stopped"]["global_step"] == 2 and metrics["stopped"]["ckpt_step"] == 2


def test_the_same_command_after_sigterm_resumes_and_ends_like_an_uninterrupted_run(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    assert run_train(run_dir, "SIGTERM@3").returncode == 143
    # step 4 ends epoch 0: the run stops at the start of epoch 1, whose epoch-end last.ckpt holds step 4
    assert json.loads((run_dir / "metrics.json").read_text())["stopped"]["global_step"] == 4
    resumed = run_train(run_dir)  # the same command, no signal: auto-resume from last.ckpt
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["config"]["ckpt_path"] == str(run_dir / "checkpoints" / "last.ckpt")

    full = train(make_cfg(*RUN, fast=False))  # the uninterrupted run
    a, b = weights(Path(full["run_dir"]) / "checkpoints" / "last.ckpt"), weights(run_dir / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert metrics["score"] == pytest.approx(full["score"], abs=1e-6)
    for task, values in full["tasks"].items():
        assert metrics["tasks"][task] == pytest.approx(values, abs=1e-6)


def test_no_signal_handler_is_left_behind_after_training(make_cfg):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    train(make_cfg())
    assert {s: signal.getsignal(s) for s in before} == before
