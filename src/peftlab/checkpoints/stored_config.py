"""The resolved training config a peftlab checkpoint carries (written by ConfigInCheckpoint)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from peftlab.checkpoints.safe_build import buildable_config
from peftlab.checkpoints.safe_loading import load_checkpoint_safely
from peftlab.errors import ConfigError

# The checkpoint entry holding the resolved training config.
CHECKPOINT_KEY = "peftlab_config"


def load_training_config(ckpt_path: str) -> DictConfig:
    """The resolved config stored in a peftlab checkpoint."""
    checkpoint = load_checkpoint_safely(ckpt_path)  # one ConfigError line for a missing, truncated or foreign file
    if not isinstance(checkpoint.get(CHECKPOINT_KEY), dict):
        raise ConfigError("ckpt_path", f"{ckpt_path} was not written by peftlab's train.py (no {CHECKPOINT_KEY!r} entry)")
    return OmegaConf.create(checkpoint[CHECKPOINT_KEY])


def load_buildable_config(ckpt_path: str, trust_remote_code: bool = False) -> DictConfig:
    """The stored config, checked to name only peftlab's own components, with ``trust_remote_code``
    from the command line (see :mod:`peftlab.checkpoints.safe_build`); what eval and export build from."""
    return buildable_config(load_training_config(ckpt_path), ckpt_path, "ckpt_path", trust_remote_code)
