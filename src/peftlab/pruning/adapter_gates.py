"""Pruning a base layer that an adapter wraps: the adapter's update of a pruned unit is zeroed.

Masks live on the base layer an adapter layer wraps (the body says which:
``PolicyBody.adapter_layers()``; see :func:`peftlab.pruning.unit_groups.find_groups`). While
training, a unit whose base rows are masked would still receive the adapter's update (LoRA's
``B·A·x``) on those rows, so it would not be dead and removing it at export would change the
outputs. :func:`gate_pruned_rows` zeroes an adapter layer's output rows whose base rows (weight
and bias) are fully masked — the masked model then equals the exported one. Merging an adapter
refills pruned entries of the base weight; :func:`peftlab.pruning.masks.reapply_masks` after
``body.merge_adapters()`` multiplies every mask in again.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from peftlab.pruning.masks import get_mask
from peftlab.pruning.unit_layout import as_rows


def pruned_rows(linear: nn.Module) -> torch.Tensor | None:
    """Bool ``[out_features]``: rows whose weight mask is all zero (and bias masked or zero); None without a mask."""
    mask = get_mask(linear, "weight")
    if mask is None:
        return None
    rows = as_rows(mask, linear)  # GPT-2's Conv1D keeps an output unit in a column
    dead = rows.reshape(rows.shape[0], -1).eq(0).all(1)
    bias = getattr(linear, "bias", None)
    if bias is not None:
        bias_mask = get_mask(linear, "bias")
        dead &= bias_mask.eq(0) if bias_mask is not None else bias.detach().eq(0)
    return dead


class _GatePrunedRows:
    """Forward hook ``output -> output * (row not pruned in base)``, reading the masks at every call."""

    def __init__(self, base: nn.Module):
        self.base = base

    def __call__(self, module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        dead = pruned_rows(self.base)
        if dead is None or not bool(dead.any()):
            return output
        return output * (~dead).to(output.dtype)


def gate_pruned_rows(adapters: Iterable) -> list[torch.utils.hooks.RemovableHandle]:
    """Zero each adapter layer's output rows whose base rows are pruned (a forward hook per layer).

    ``adapters``: the body's adapter layers (``.layer`` wrapping ``.base``, as
    ``PolicyBody.adapter_layers()`` gives them). Read from the masks at every forward, so it
    follows the pruning schedule; a no-op for layers with no fully pruned row. Returns the hook
    handles (``.remove()`` to undo).
    """
    return [a.layer.register_forward_hook(_GatePrunedRows(a.base)) for a in adapters]
