"""OmegaConf resolvers the configs use.

Both are cached (``use_cache=True``): Hydra copies a config's resolver cache into every job of a
sweep (``OmegaConf.copy_cache``) and the cache travels with the pickled config to SLURM jobs, so
the sweep dir resolved in the launching process is the one every job writes into.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

# One id per process: run and sweep dirs end in it, so two jobs started in the same second
# (even on different nodes) never share a directory.
_PROCESS_UID = f"{os.getpid():x}{secrets.token_hex(2)}"

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
    repo = Path(__file__).resolve().parents[3]  # <repo>/src/peftlab/utils/resolvers.py
    return str(repo if (repo / "configs" / "train.yaml").is_file() else Path.cwd())


def register_resolvers() -> None:
    """Register ``${peftlab_uid:}`` and ``${peftlab_root:}`` (idempotent)."""
    if not OmegaConf.has_resolver("peftlab_uid"):
        OmegaConf.register_new_resolver("peftlab_uid", lambda: _PROCESS_UID, use_cache=True)
    if not OmegaConf.has_resolver("peftlab_root"):
        OmegaConf.register_new_resolver("peftlab_root", project_root, use_cache=True)
