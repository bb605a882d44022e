"""Auto-resume: a job started into a run directory that already holds its checkpoints continues.

Under SLURM a requeued job (preempted, or at its time limit) gets the same run directory
(``peftlab/utils/run_identity.py``); this finds ``checkpoints/last.ckpt`` there and resumes from it:
weights, optimizer, LR schedule, pruning masks and schedule, weighting state, RNG states and the
epoch, as any ``ckpt_path=`` resume does. ``last.ckpt`` is written at epoch ends, which resume
bit-for-bit like an uninterrupted run (at most one epoch is repeated). A job whose metrics.json says
``completed`` is not run again. ``resume=false`` turns both off.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from peftlab.reporting import METRICS_FILE

log = logging.getLogger(__name__)
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def completed_run(cfg: DictConfig) -> dict[str, Any] | None:
    """The metrics of a run already completed in ``cfg.paths.output_dir`` (None: run it)."""
    path = Path(cfg.paths.output_dir) / METRICS_FILE
    if not cfg.get("resume", True) or not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return None
    if metrics.get("status") != "completed":
        return None
    log.info(f"resume: {path} says completed; not running this job again (resume=false re-runs it)")
    return metrics


def resume_from_last_checkpoint(cfg: DictConfig) -> DictConfig:
    """Set ``ckpt_path`` to the run dir's ``last.ckpt`` when it exists, ``resume`` is true and none was given."""
    last = Path(cfg.paths.output_dir) / LAST_CHECKPOINT
    if cfg.get("resume", True) and cfg.get("ckpt_path") is None and last.is_file():
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
        log.info(f"resume: continuing from {last} (resume=false starts over)")
    return cfg
