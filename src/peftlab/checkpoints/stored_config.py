"""The resolved training config a peftlab checkpoint carries (written by ConfigInCheckpoint)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

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
