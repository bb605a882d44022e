"""A run's identity: the suffix of its directory and its logger run id.

Under SLURM the identity is the scheduler's job id (``<array job id>_<task id>`` for array jobs,
else ``SLURM_JOB_ID``), so every ``srun`` rank of one job resolves the same directory and a
requeued job (same id) finds its own checkpoints again. Outside SLURM it is the start time plus
an id unique to this launch, so two runs started in the same second never share a directory.
Hydra has no such notion (its ``${now:}`` differs between ranks and after a requeue).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Mapping

# One id per launch (process): the local fallback when no scheduler names the job.
_LAUNCH_UID = f"{os.getpid():x}{secrets.token_hex(2)}"
_LAUNCH_TIME = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def slurm_job_key(env: Mapping[str, str] | None = None) -> str | None:
    """``<array job id>_<task id>`` for a SLURM array task, ``<job id>`` for a plain job, None outside SLURM.

    A second, third … ``srun`` in the same job (job step 1, 2 …) gets ``.<step>`` appended, so
    sequential runs inside one allocation do not share a directory; a requeued job numbers its
    steps from 0 again and so finds the same directories.
    """
    env = os.environ if env is None else env
    array_job, array_task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    key = f"{array_job}_{array_task}" if array_job and array_task else env.get("SLURM_JOB_ID")
    step = env.get("SLURM_STEP_ID", "")
    if key and step.isdigit() and step != "0":
        key += f".{step}"
    return key or None


def launch_uid() -> str:
    """An id unique to this launch (process id + random), stable for the life of the process."""
    return _LAUNCH_UID


def run_id(env: Mapping[str, str] | None = None) -> str:
    """The run directory's name: ``slurm-<job key>`` under SLURM, else ``<date>_<time>_<launch uid>``."""
    key = slurm_job_key(env)
    return f"slurm-{key}" if key else f"{_LAUNCH_TIME}_{_LAUNCH_UID}"


def logger_run_id(output_dir: str | os.PathLike) -> str:
    """A logger run id (W&B ``id``) for the run writing into ``output_dir``.

    Derived from the directory, which is unique per job and the same after a requeue, so a
    resumed job continues the same logger run. Letters, digits and dashes only (W&B's rule).
    """
    path = Path(output_dir).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"{path.parent.name}-{path.name}" if path.name.isdigit() else path.name  # sweep job: <sweep>-<num>
    readable = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[-40:].strip("-")
    return f"{readable}-{digest}"


def sweep_group(default: str) -> str:
    """The logger group of this job: ``<task name>-<sweep dir name>`` inside a multirun, else ``default``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return default
    hc = HydraConfig.get()
    output_dir = hc.runtime.get("output_dir")
    if not output_dir or Path(output_dir).parent != Path(hc.sweep.dir):
        return default
    return f"{default}-{Path(hc.sweep.dir).name}"
