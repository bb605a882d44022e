"""A run SIGKILLed mid-training and resumed into its own directory keeps its curves: metrics.csv holds
the rows logged before the checkpoint and the resumed run's rows after it, each step of each series
once; TensorBoard hides the killed run's events after the checkpoint (purge_step)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from peftlab.reporting.resumed_logs import ResumableCSVLogger, earlier_rows

RUN = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.max_epochs=3",
    "++trainer.limit_train_batches=4",
    "trainer.log_every_n_steps=1",
    "callbacks.step_checkpoint.every_n_train_steps=2",
    "logger=many",  # csv + tensorboard + wandb (disabled here)
    "+callbacks.signal_at_step._target_=signal_helpers.SignalAtStep",  # $PEFTLAB_TEST_SIGNAL (tests/runs/signal_helpers.py)
]


def run_train(run_dir: Path, signal_spec: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "runs"), os.environ.get("PYTHONPATH", "")])}
    env.pop("PEFTLAB_TEST_SIGNAL", None)
    if signal_spec:
        env["PEFTLAB_TEST_SIGNAL"] = signal_spec
    cmd = [sys.executable, str(ROOT / "train.py"), *RUN, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_sigkilled_then_resumed_run_keeps_the_curve_before_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    killed = run_train(run_dir, "SIGKILL@7")  # step checkpoint at 6 (mid-epoch 1), killed after step 7
    assert killed.returncode == -9, killed.stderr[-2000:]
    before = read_rows(run_dir / "csv" / "metrics.csv")
    assert max(int(r["step"]) for r in before) >= 6  # the killed run logged past its checkpoint

    resumed = run_train(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = read_rows(run_dir / "csv" / "metrics.csv")
    kept = [r for r in before if int(r["step"]) < 6]
    assert after[: len(kept)] == kept  # the curve before the checkpoint, as it was
    loss = "train/loss"
    assert sorted(int(r["step"]) for r in after if loss in r) == list(range(1, 13))  # 3 epochs x 4 steps, each once
    assert sorted(int(r["step"]) for r in after if "alpha/digit" in r) == list(range(1, 13))
    seen = set()
    for row in after:  # no step of any series twice
        for key in row:
            if key not in ("step", "epoch"):
                assert (key, row["step"]) not in seen, (key, row["step"])
                seen.add((key, row["step"]))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # the killed run's file and the resumed run's
    tag = next(t for t in events.Tags()["scalars"] if t == loss)
    assert [e.step for e in events.Scalars(tag)] == list(range(1, 13))  # steps after the checkpoint purged, then logged once


def test_earlier_rows_are_those_up_to_the_checkpoint_step(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("alpha/a,epoch,step,train/loss,val/score\n1.0,,4,,\n,0,3,0.5,\n,0,3,,0.7\n,0,5,0.4,\n1.0,,5,,\n")
    assert earlier_rows(path, 4) == [{"alpha/a": 1.0, "step": 4}, {"epoch": 0, "step": 3, "train/loss": 0.5}, {"epoch": 0, "step": 3, "val/score": 0.7}]


def test_resumed_logger_keeps_old_rows_merges_the_checkpoint_step_and_joins_new_columns(tmp_path):
    (tmp_path / "csv").mkdir()
    old = "epoch,lr,old/col,step\n0,,1.5,0\n0,,2.5,1\n,0.1,,1\n0,,3.5,2\n,0.2,,2\n0,,4.5,3\n"
    (tmp_path / "csv" / "metrics.csv").write_text(old)
    logger = ResumableCSVLogger(tmp_path, name="csv", version="", flush_logs_every_n_steps=1)
    assert logger.resume_at(2) == 5
    logger.log_metrics({"lr": 0.2}, step=2)  # the resumed run logs the learning rate at step 2 again
    logger.log_metrics({"new/col": 9.0}, step=3)
    logger.finalize("success")
    assert read_rows(tmp_path / "csv" / "metrics.csv") == [
        {"epoch": "0", "old/col": "1.5", "step": "0"},
        {"epoch": "0", "old/col": "2.5", "step": "1"},
        {"lr": "0.1", "step": "1"},
        {"lr": "0.2", "step": "2"},
        {"epoch": "0", "old/col": "3.5", "step": "2"},  # held: not logged again at step 2
        {"new/col": "9.0", "step": "3"},
    ]
