"""Bad-input catalogue of run directories and devices: a run dir, log dir or project root that cannot
be written, a run dir another live run holds, and a GPU accelerator on a machine without one.

Each case exits 2 with exactly one ``error: <key>: ...`` line, no traceback, and leaves the
finished run unchanged (tests/bad_input_harness.py). Unwritable directories are made with a path
under a regular file (``<tmp>/file.txt/sub``): the tests run as root, where ``chmod`` does not stop
writes, but no one can create a directory inside a file (ENOTDIR).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bad_input_harness import TINY, check_bad_input
from conftest import ROOT

pytestmark = pytest.mark.slow

CASES = [
    ("run_dir_under_a_file", "train.py", ["hydra.run.dir={tmp}/file.txt/run"], "hydra.run.dir", {"file.txt": "a file"}),
    ("log_dir_is_a_file", "train.py", [], "paths.log_dir", {"logs": "a file where the log dir should be"}),  # the harness sets paths.log_dir={tmp}/logs
]
if not torch.cuda.is_available():
    CASES += [
        ("accelerator_gpu_without_gpu", "train.py", ["trainer.accelerator=gpu"], "trainer.accelerator", {}),
        ("accelerator_cuda_without_gpu", "train.py", ["trainer.accelerator=cuda"], "trainer.accelerator", {}),
        ("trainer_gpu_without_gpu", "train.py", ["trainer=gpu"], "trainer.accelerator", {}),
    ]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path):
    check_bad_input(case, finished_run, tmp_path)


def test_an_unwritable_project_root_names_peftlab_root(tmp_path):
    (tmp_path / "file.txt").write_text("a file")
    env = {**os.environ, "PEFTLAB_ROOT": str(tmp_path / "file.txt" / "root"), "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *TINY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("error: PEFTLAB_ROOT: ") and "cannot be written" in lines[0], proc.stderr[-2000:]


def test_a_run_dir_held_by_a_live_run_names_its_pid(finished_run, tmp_path):
    hold = "import sys, time; from peftlab.runs.run_dir_lock import lock_run_dir; lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "busy")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        case = ("run_dir_in_use", "train.py", [f"hydra.run.dir={tmp_path / 'busy'}"], f"in use by another run (pid {holder.pid})", {})
        check_bad_input(case, finished_run, tmp_path)
        assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [".peftlab.lock"]  # nothing written into it
    finally:
        holder.kill()
        holder.wait()
