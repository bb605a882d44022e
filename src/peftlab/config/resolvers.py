"""OmegaConf resolvers the configs use.

The run id and the project root are cached (``use_cache=True``): Hydra copies a config's resolver cache into every job of a
sweep (``OmegaConf.copy_cache``) and the cache travels with the pickled config to SLURM jobs, so
the sweep dir resolved in the launching process is the one every job writes into.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from peftlab.runs.run_identity import launch_uid, logger_run_id, run_id, sweep_group


def _gpus_per_node(accelerator: str, devices) -> int | None:
    """GPUs a SLURM job asks for: ``trainer.devices`` on GPU accelerators, none (no --gpus-per-node) on CPU."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def _sqlite_url(path: str) -> str:
    """``sqlite:///<absolute path>`` for an SQLite file, its folder created (SQLite will not)."""
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


#: Environment variable that, when set, names the project root (where ``logs/`` and ``data/`` live).
ROOT_ENV = "PEFTLAB_ROOT"


def project_root() -> str:
    """The project root: ``$PEFTLAB_ROOT`` if set, else the repository holding peftlab's ``configs/``.

    Like lightning-hydra-template's project-root marker, this does not depend on Hydra's runtime
    config (which is not set yet when Hydra resolves ``hydra.sweep.dir``) nor on the directory
    the command is started from. Falls back to the current directory for a non-editable install.
    """
    if os.environ.get(ROOT_ENV):
        return str(Path(os.environ[ROOT_ENV]).expanduser().resolve())
    repo = Path(__file__).resolve().parents[3]  # <repo>/src/peftlab/config/resolvers.py
    return str(repo if (repo / "configs" / "train.yaml").is_file() else Path.cwd())


def examples_dir() -> str:
    """The repository's ``examples/`` (files the example configs read): beside ``configs/``, whatever
    ``$PEFTLAB_ROOT`` says (that moves logs and data, not the files shipped with the code)."""
    return str(Path(__file__).resolve().parents[3] / "examples")  # <repo>/src/peftlab/config/resolvers.py


def register_resolvers() -> None:
    """Register the ``peftlab_*`` resolvers (idempotent).

    ``${peftlab_run_id:}`` and ``${peftlab_root:}`` are cached in the config (``use_cache``): Hydra
    copies a sweep's cache into each of its jobs, so a job running on another machine (SLURM)
    resolves the same sweep dir.
    """
    resolvers = {
        "peftlab_uid": (launch_uid, False),  # unique per launch (kept for old configs)
        "peftlab_root": (project_root, True),  # the project root (logs/, data/ live there)
        "peftlab_examples": (examples_dir, True),  # the repository's examples/ (shipped example files)
        "peftlab_run_id": (run_id, True),  # run/sweep dir name: SLURM job id or date_time_uid
        "peftlab_logger_id": (logger_run_id, False),  # W&B run id from the run dir (same after requeue)
        "peftlab_sweep_group": (sweep_group, False),  # W&B group: the sweep's name inside a multirun
        "peftlab_gpus_per_node": (_gpus_per_node, False),  # SLURM GPUs from trainer.accelerator/devices
        "peftlab_sqlite_url": (_sqlite_url, False),  # Optuna study storage under the log dir
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)
