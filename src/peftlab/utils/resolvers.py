"""OmegaConf resolvers the configs use."""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

# One id per process: run and sweep dirs end in it, so two jobs started in the same second
# (even on different nodes) never share a directory.
_PROCESS_UID = f"{os.getpid():x}{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """Register ``${peftlab_uid:}`` (idempotent)."""
    if not OmegaConf.has_resolver("peftlab_uid"):
        OmegaConf.register_new_resolver("peftlab_uid", lambda: _PROCESS_UID)
