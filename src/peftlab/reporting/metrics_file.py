"""Writing ``metrics.json``: the contract sweep reports and other tools read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peftlab.checkpoints.atomic_files import write_text_atomic

METRICS_FILE = "metrics.json"


def write_metrics(run_dir: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``<run_dir>/metrics.json`` atomically (write a temp file, then rename).

    A reader never sees a half-written file, even if the job is killed mid-write.
    """
    return write_text_atomic(Path(run_dir) / METRICS_FILE, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def failure_payload(run_dir: str | Path, error: BaseException, config: dict | None = None) -> dict[str, Any]:
    """The ``metrics.json`` of a run that stopped with ``error``."""
    message = " ".join(str(error).split()) or type(error).__name__
    return {"status": "failed", "error": message, "run_dir": str(run_dir), "config": config}


def interrupted_payload(run_dir: str | Path, stopped: dict[str, Any], ckpt_path: str | None, config: dict | None = None) -> dict[str, Any]:
    """The ``metrics.json`` of a run a signal stopped: where it stopped and the checkpoint that resumes it.

    ``stopped`` holds ``signal``, ``epoch``, ``global_step`` and ``ckpt_step`` (the step stored in
    ``ckpt_path``; equal to ``global_step`` when the checkpoint was written as the run stopped).
    """
    return {"status": "interrupted", "stopped": stopped, "run_dir": str(run_dir), "ckpt_path": ckpt_path, "config": config}


def replaceable_record(run_dir: str | Path) -> bool:
    """Whether a failure or interruption may be written: no metrics.json yet, or one from an interruption of this run."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return True
    try:
        return json.loads(path.read_text()).get("status") == "interrupted"
    except (ValueError, AttributeError):
        return False
