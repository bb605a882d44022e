"""Lightning DDP inside a Hydra multirun (``python train.py -m trainer=ddp_sim a=1,2``).

Lightning starts ranks 1..n-1 by re-running the command line (``sys.argv``) with ``LOCAL_RANK``
set. Under ``-m`` that command is the whole sweep, so each child would run every job again and
write into the wrong directory; and after the first job the parent keeps ``LOCAL_RANK`` and a
process group whose other ranks have exited, so the next job would hang. Neither Hydra nor
Lightning handles this (lightning-hydra-template users report it), hence these two hooks:

- ``prepare_job()`` (start of every job, in the process Hydra runs it in): drops what the previous
  job's DDP launch left behind and records this job's overrides and directory in the environment,
  which the children inherit;
- ``child_argv()`` (start of the process): in a child Lightning launched for such a job, the
  command line that runs exactly that job, as a single run, in that job's directory.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

JOB_ENV = "PEFTLAB_DDP_JOB"
# Variables Lightning's subprocess launcher sets in the parent's own environment.
_LAUNCH_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_ENV_AT_START = {k: os.environ[k] for k in _LAUNCH_VARS if k in os.environ}


def child_argv(argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``argv`` for this process: the recorded job's single-run command in a DDP child, else unchanged."""
    env = os.environ if env is None else env
    job, local_rank = env.get(JOB_ENV), env.get("LOCAL_RANK")
    if not job or local_rank in (None, "0"):
        return list(argv)
    job = json.loads(job)
    return [
        argv[0],
        *job["overrides"],
        f'hydra.run.dir="{job["run_dir"]}"',  # the parent job's directory
        "hydra.output_subdir=null",  # the parent already wrote .hydra/
        f"hydra.job.name={job['job_name']}_rank{local_rank}",  # own log file: <name>_rank<k>.log
    ]


def prepare_job() -> None:
    """Start of a Hydra job: forget the previous job's DDP launch; record this job for DDP children."""
    from hydra.core.hydra_config import HydraConfig

    for key in _LAUNCH_VARS:  # set by Lightning for the previous job, not by the user or scheduler
        if key in os.environ and key not in _ENV_AT_START:
            del os.environ[key]
    _destroy_stale_process_group()
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    os.environ[JOB_ENV] = json.dumps({"overrides": list(hc.overrides.task), "run_dir": hc.runtime.output_dir, "job_name": hc.job.name})


def release_process_group() -> None:
    """End of the process's training: destroy the default process group while the interpreter is whole.

    A gloo process group still alive at interpreter exit can abort the process ("terminate called
    without an active exception": its worker threads are destroyed unjoined; pytorch/pytorch#190489),
    and Lightning's DDP teardown does not destroy it. Every rank has finished its collectives by now.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _destroy_stale_process_group() -> None:
    """A process group left by the previous job of this process (its other ranks have exited)."""
    if "LOCAL_RANK" not in _ENV_AT_START:  # not a rank a launcher started: the group is this process's own
        release_process_group()
