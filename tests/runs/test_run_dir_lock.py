"""One run per directory, also under races: the run dir's flock is held for the run's life, a second
start is refused in one line naming the holder's pid (exit 2), a lock of a SIGKILLed process does
not block, and ranks > 0 of a run take no lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from peftlab.runs.run_dir_lock import LOCK_FILE, RunDirLocked, launching_process, lock_run_dir, release_run_dir

HOLD = "import sys, time; from peftlab.runs.run_dir_lock import lock_run_dir; lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)"


def hold_lock_in_a_process(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_lock_refuses_a_second_holder_naming_its_pid(tmp_path):
    holder = hold_lock_in_a_process(tmp_path / "run")
    try:
        with pytest.raises(RunDirLocked) as err:
            lock_run_dir(tmp_path / "run")
        assert err.value.key == "hydra.run.dir" and f"in use by another run (pid {holder.pid})" in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_sigkilled_process_does_not_block(tmp_path):
    holder = hold_lock_in_a_process(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(holder.pid)  # the file stays; the kernel dropped the lock
    lock_run_dir(tmp_path / "run")
    assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
    release_run_dir(tmp_path / "run")


def test_only_the_launching_process_takes_the_lock():
    assert launching_process({})
    assert launching_process({"LOCAL_RANK": "0", "SLURM_PROCID": "0"})
    assert not launching_process({"LOCAL_RANK": "1"})  # Lightning's DDP child
    assert not launching_process({"SLURM_PROCID": "3"})  # an srun task of a multi-task job
    assert not launching_process({"RANK": "2"})


TINY = ["callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=2", "++trainer.limit_train_batches=30"]


def start(run_dir, *extra):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(ROOT / "train.py"), *TINY, f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_dir_one_trains_the_other_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first, second = start(run_dir), start(run_dir)
    outs = {p: p.communicate(timeout=600) for p in (first, second)}
    codes = sorted(p.returncode for p in outs)
    assert codes == [0, 2], [o[1][-2000:] for o in outs.values()]
    winner = next(p for p in outs if p.returncode == 0)
    loser = next(p for p in outs if p.returncode == 2)
    err = outs[loser][1].strip().splitlines()
    assert err[-1].startswith("error: hydra.run.dir: ") and f"in use by another run (pid {winner.pid})" in err[-1], err[-5:]
    assert "Traceback" not in outs[loser][1]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_lock_that_blocks_its_resume(tmp_path):
    run_dir = tmp_path / "run"
    victim = start(run_dir, "callbacks.step_checkpoint.every_n_train_steps=5")
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    again = start(run_dir, "callbacks.step_checkpoint.every_n_train_steps=5")
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
