"""The bad-input harness shared by every bad-input catalogue file (tests/**/test_bad_inputs*.py).

A case runs the real command and must exit with status 2, print exactly one ``error: <key or
file>: ...`` line (the last line of stderr) naming what is wrong, print no traceback, and leave a
previously finished run directory byte-for-byte unchanged (hashed before and after).
Use the ``finished_run`` fixture (tests/conftest.py) and :func:`check_bad_input`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
LOCAL = ["data=local_file", "data.source.features=[f0,f1]", "data.input_shape=[2]"]


def run_command(script: str, args: list[str], cwd_log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, str(ROOT / script), *args]
    cmd.append(f"paths.log_dir={cwd_log}")  # keep the logs of each case in its temp dir
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def write_file(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def check_bad_input(case: tuple, finished_run: Path, tmp_path: Path) -> None:
    """Run one ``(id, script, args, named, files)`` case and assert the bad-input contract.

    ``args`` may hold ``{tmp}`` (the case's temp dir) and ``{run}`` (the finished run's dir);
    ``files`` maps a file name in ``{tmp}`` to its content (``"TRUNCATE"``: the first half of the
    finished run's last.ckpt; ``"LIST"``: a torch file holding a list).
    """
    _, script, args, named, files = case
    for name, content in files.items():
        if content == "TRUNCATE":  # the first half of a real checkpoint
            data = (finished_run / "checkpoints" / "last.ckpt").read_bytes()
            (tmp_path / name).write_bytes(data[: len(data) // 2])
        elif content == "LIST":  # a valid torch file that is not a checkpoint
            torch.save([1, 2, 3], tmp_path / name)
        else:
            write_file(tmp_path / name, content)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(finished_run)) for a in args]
    before = hashes(finished_run)
    extra = TINY if script == "train.py" else []
    proc = run_command(script, [*extra, *args], tmp_path / "logs")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line.lower()]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert errors[0].startswith("error: ") and named in errors[0], errors[0]
    assert hashes(finished_run) == before
    assert not [p for p in (tmp_path / "logs").rglob("*.ckpt")]  # and no checkpoint was written
