"""Auto-resume: a run killed with SIGKILL mid-epoch and started again into its run directory
continues from checkpoints/last.ckpt and ends exactly like an uninterrupted run; a completed run
is not run again; a run of another config, or `resume=false`, is refused and changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, read_json

pytestmark = pytest.mark.slow

# ~90 optimizer steps per epoch; pruning (masks, schedule) and learned α (uncertainty) both carry state.
RUN = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "strategy=prune_share",
    "strategy/weighting=uncertainty",
    "data.batch_size=16",
    "trainer.max_epochs=4",
    "strategy.pruning.start_step=50",
    "strategy.pruning.end_step=250",
    "strategy.pruning.every_n_steps=25",
]


def _cmd(run_dir, *extra):
    # hydra.run.dir: how a user points a new launch at an existing run (SLURM requeues get it from the job id)
    return [sys.executable, "train.py", *RUN, f"hydra.run.dir={run_dir}", *extra]


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return env


def _run(run_dir, *extra):
    result = subprocess.run(_cmd(run_dir, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_sigkilled_run_resumes_into_the_same_result(tmp_path):
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full = subprocess.Popen(_cmd(full_dir), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = subprocess.Popen(_cmd(killed_dir), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed"
    time.sleep(0.5)  # into the next epoch
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "metrics.json").exists()
    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert epoch_at_kill < 3

    _run(killed_dir)  # the same command again: resumes from last.ckpt by itself
    assert full.wait(timeout=600) == 0
    resumed, reference = read_json(killed_dir / "metrics.json"), read_json(full_dir / "metrics.json")
    assert resumed["config"]["ckpt_path"] == str(last) and reference["config"]["ckpt_path"] is None
    a, b = _state(killed_dir), _state(full_dir)
    assert a.keys() == b.keys() and any(k.endswith("_mask") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights, masks, learned log-variances (α)
    assert resumed["alpha"] == reference["alpha"] and resumed["tasks"] == reference["tasks"]
    assert resumed["pruning"]["history"] == reference["pruning"]["history"]

    # completed: starting it again does not train again
    before = (killed_dir / "metrics.json").read_bytes()
    again = _run(killed_dir)
    assert "says completed; not running this job again" in again.stdout + again.stderr
    assert (killed_dir / "metrics.json").read_bytes() == before

    # nothing started into it may replace that run: another config, or resume=false (start over)
    files = {p: p.read_bytes() for p in killed_dir.rglob("*") if p.is_file()}
    for extra, line in [
        (["trainer.max_epochs=5"], (f"error: hydra.run.dir: {killed_dir} holds a run of another config (", "trainer.max_epochs: 4 -> 5")),
        (["resume=false"], (f"error: resume: false, but {killed_dir} already holds a run (metrics.json)", "")),
    ]:
        refused = subprocess.run(_cmd(killed_dir, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
        last_line = refused.stderr.strip().splitlines()[-1]
        assert refused.returncode == 2 and last_line.startswith(line[0]) and line[1] in last_line, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        assert {p: p.read_bytes() for p in killed_dir.rglob("*") if p.is_file()} == files
