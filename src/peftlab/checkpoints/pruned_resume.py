"""Refuse to resume a pruned checkpoint under a config that does not prune.

Without a pruning callback nothing keeps the masked weights at zero: the restored masks are
buffers no one applies, the optimizer moves the zeroed weights again and the pruned model
silently becomes a dense one (half of a 50 % pruned layer revived). The checkpoint says it was
pruned by its masks (``<param>_mask`` beside ``<param>`` or ``<param>_orig``) or by the
``strategy.pruning`` of the config it carries.
"""

from __future__ import annotations

from typing import Any, Mapping

from peftlab.checkpoints.safe_loading import load_checkpoint_safely
from peftlab.checkpoints.stored_config import CHECKPOINT_KEY
from peftlab.errors import ConfigError


def masked_parameters(state_dict: Mapping[str, Any]) -> list[str]:
    """Parameters of ``state_dict`` that carry a pruning mask."""
    names = []
    for key in state_dict:
        base = key[: -len("_mask")] if key.endswith("_mask") else None
        if base and (base in state_dict or f"{base}_orig" in state_dict):
            names.append(base)
    return names


def stored_pruning(checkpoint: Mapping[str, Any]) -> str | None:
    """The ``_target_`` of the pruning the checkpoint's own config ran (None: it did not prune)."""
    config = checkpoint.get(CHECKPOINT_KEY)
    strategy = config.get("strategy") if isinstance(config, Mapping) else None
    pruning = strategy.get("pruning") if isinstance(strategy, Mapping) else None
    return pruning.get("_target_") if isinstance(pruning, Mapping) else None


def check_pruned_resume(ckpt_path: str, pruning: Mapping[str, Any] | None) -> None:
    """ConfigError naming ``strategy.pruning`` when ``ckpt_path`` was pruned and ``pruning`` (this run's
    ``strategy.pruning``) prunes nothing."""
    if pruning and "_target_" in pruning:
        return  # this run prunes: the callback takes the masks over (and checks they fit)
    checkpoint = load_checkpoint_safely(ckpt_path, mmap=True)
    masked = masked_parameters(checkpoint.get("state_dict") or {})
    target = stored_pruning(checkpoint)
    if masked or target:
        what = f"{len(masked)} masked weights, e.g. {masked[0]}" if masked else f"pruning {target}"
        raise ConfigError(
            "strategy.pruning",
            f"{ckpt_path} was trained with pruning ({what}) but this run prunes nothing, which would let the pruned weights grow back; "
            "resume with the checkpoint's strategy/pruning (e.g. strategy=prune_share), or evaluate it with eval.py",
        )
