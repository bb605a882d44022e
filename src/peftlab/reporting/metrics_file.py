"""Writing ``metrics.json``: the contract sweep reports and other tools read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"


def write_metrics(run_dir: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``<run_dir>/metrics.json`` atomically (write a temp file, then rename).

    A reader never sees a half-written file, even if the job is killed mid-write.
    """
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def failure_payload(run_dir: str | Path, error: BaseException, config: dict | None = None) -> dict[str, Any]:
    """The ``metrics.json`` of a run that stopped with ``error``."""
    message = " ".join(str(error).split()) or type(error).__name__
    return {"status": "failed", "error": message, "run_dir": str(run_dir), "config": config}
