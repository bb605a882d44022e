"""The automatic path's objective: per-task losses combined by a loss-based weighting (one backward, Lightning's)."""

from __future__ import annotations

from typing import Any

import torch

from peftlab.weighting import Weighting


def shared_representation(features: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The shared feature tensor when every task reads the same one (hard sharing) and it carries a gradient, else None."""
    values = list(features.values())
    if isinstance(values[0], dict):  # a decoder's {"logits", "pooled"}: its heads read different tensors
        return None
    return values[0] if all(v is values[0] for v in values) and values[0].requires_grad else None


def weighted_loss(weighting: Weighting, losses: dict[str, torch.Tensor], features: dict[str, torch.Tensor], body: Any) -> torch.Tensor:
    """``weighting(losses)``; a method with ``uses_shared`` (GradNorm) also gets the shared tensors it
    differentiates: the shared features (``representation`` mode) or the body's last shared weight matrix."""
    if not weighting.uses_shared:
        return weighting(losses)
    if weighting.on_representation:
        rep = shared_representation(features)
        shared = None if rep is None else [rep]
    else:
        shared = [p for p in body.shared_parameters() if p.ndim >= 2][-1:] or None
    return weighting.combine(losses, shared=shared)
