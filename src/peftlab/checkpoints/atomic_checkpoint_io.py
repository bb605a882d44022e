"""Lightning checkpoint I/O that never leaves a truncated checkpoint and fails on a bad one in one line."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from peftlab.checkpoints.atomic_files import atomic_path
from peftlab.checkpoints.safe_loading import load_checkpoint_safely


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's :class:`~lightning.pytorch.plugins.io.TorchCheckpointIO` with two changes for local files:

    * ``save_checkpoint`` writes ``<dir>/.<name>.*.tmp`` and renames it over the target
      (:func:`~peftlab.checkpoints.atomic_files.atomic_path`): a job killed while writing ``last.ckpt``
      leaves the previous ``last.ckpt`` intact;
    * ``load_checkpoint`` (resume, ``trainer.test(ckpt_path=...)``) loads with
      ``weights_only=True`` and turns a missing, truncated or foreign file into one
      :class:`~peftlab.errors.ConfigError` naming ``ckpt_path``.

    Remote paths (s3://, gs://, ...) keep Lightning's behaviour. Use with
    ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        """Save ``checkpoint`` to ``path`` through a temp file and an atomic rename."""
        if not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: _PATH, map_location: Optional[Callable] = lambda storage, loc: storage, weights_only: Optional[bool] = None) -> dict[str, Any]:
        """Load a checkpoint (``weights_only=True`` unless asked otherwise); a bad file is a ConfigError."""
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        return load_checkpoint_safely(path, map_location=map_location, weights_only=True if weights_only is None else weights_only)


def _is_local(path: _PATH) -> bool:
    protocol = get_filesystem(path).protocol
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))
