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
