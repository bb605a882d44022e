"""Stores the run's resolved config inside every checkpoint, so a checkpoint alone can be evaluated."""

from __future__ import annotations

from typing import Any

import lightning as L

from peftlab.checkpoints.stored_config import CHECKPOINT_KEY


class ConfigInCheckpoint(L.Callback):
    """Adds ``checkpoint["peftlab_config"]`` (a plain dict) on every save."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """Attach the config."""
        checkpoint[CHECKPOINT_KEY] = self.config
