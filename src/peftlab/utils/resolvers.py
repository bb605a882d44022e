"""OmegaConf resolvers the configs use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from peftlab.utils.run_identity import launch_uid, logger_run_id, run_id, sweep_group


def _gpus_per_node(accelerator: str, devices) -> int | None:
    """GPUs a SLURM job asks for: ``trainer.devices`` on GPU accelerators, none (no --gpus-per-node) on CPU."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def _sqlite_url(path: str) -> str:
    """``sqlite:///<absolute path>`` for an SQLite file, its folder created (SQLite will not)."""
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def register_resolvers() -> None:
    """Register the ``peftlab_*`` resolvers (idempotent).

    ``${peftlab_run_id:}`` is cached in the config (``use_cache``): Hydra copies a sweep's cache
    into each of its jobs, so a job running on another machine (SLURM) resolves the same sweep dir.
    """
    resolvers = {
        "peftlab_uid": (launch_uid, False),            # unique per launch (kept for old configs)
        "peftlab_run_id": (run_id, True),              # run/sweep dir name: SLURM job id or date_time_uid
        "peftlab_logger_id": (logger_run_id, False),   # W&B run id from the run dir (same after requeue)
        "peftlab_sweep_group": (sweep_group, False),   # W&B group: the sweep's name inside a multirun
        "peftlab_gpus_per_node": (_gpus_per_node, False),  # SLURM GPUs from trainer.accelerator/devices
        "peftlab_sqlite_url": (_sqlite_url, False),    # Optuna study storage under the log dir
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)
