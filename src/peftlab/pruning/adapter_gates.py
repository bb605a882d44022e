"""Pruning a base layer that an adapter wraps: the adapter's update of a pruned unit is zeroed.

Masks live on the base layer an adapter layer wraps (the body says which:
``PolicyBody.adapter_layers()``; see :func:`peftlab.pruning.unit_groups.find_groups`). While
training, a unit whose base rows are masked would still receive the adapter's update (LoRA's
``B·A·x``) on those rows, so it would not be dead and removing it at export would change the
outputs. :func:`gate_pruned_rows` zeroes an adapter layer's output rows whose base rows (weight
and bias) are fully masked — the masked model then equals the exported one. Merging an adapter
refills pruned entries of the base weight; :func:`peftlab.pruning.masks.reapply_masks` after
``body.merge_adapters()`` multiplies every mask in again. For a plain peft LoRA layer the update
itself is masked entry by entry (``x·((s·B·A) ⊙ M)ᵀ``, unstructured masks included), so the
trained model computes exactly what the merged and re-masked export computes
(``strategy=prune_recover``); other adapters get the row gate.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from peftlab.pruning.masks import get_mask
from peftlab.pruning.n_m import rows_view
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


def _plain_lora(layer: nn.Module) -> bool:
    """A peft LoRA layer whose update is ``s·B·A`` (no DoRA or other variant, no bias on B), unmerged."""
    if not all(hasattr(layer, a) for a in ("lora_A", "lora_B", "scaling", "lora_dropout", "active_adapters")) or getattr(layer, "merged", False):
        return False
    variants = getattr(layer, "lora_variant", {}) or {}
    return all(n not in variants and getattr(layer.lora_B[n], "bias", None) is None for n in layer.active_adapters if n in layer.lora_A)


def masked_lora_output(layer: nn.Module, base: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``base(x) + Σ dropout(x)·((s·B·A) ⊙ M)ᵀ`` over the active adapters: what the merged, re-masked layer computes.

    Written by hand: peft adds the full ``B·A·x``; an entry-wise masked update has no peft option.
    """
    result = base(x)  # the base weight holds its mask already (pruned entries are zero)
    rows_mask = rows_view(base, mask)  # [out, in] (GPT-2's Conv1D stores [in, out])
    for name in layer.active_adapters:
        if name not in layer.lora_A:
            continue
        a, b = layer.lora_A[name], layer.lora_B[name]
        delta = (b.weight @ a.weight) * layer.scaling[name]
        result = result + torch.nn.functional.linear(layer.lora_dropout[name](x.to(a.weight.dtype)), delta * rows_mask.to(delta.dtype)).to(result.dtype)
    return result


class _GatePrunedRows:
    """Forward hook: a plain LoRA's update masked entry by entry; other adapters' outputs gated by pruned base rows. Masks read at every call."""

    def __init__(self, base: nn.Module):
        self.base = base

    def __call__(self, module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        mask = get_mask(self.base, "weight")
        if mask is not None and not getattr(module, "disable_adapters", False) and _plain_lora(module) and len(args) == 1:
            return masked_lora_output(module, self.base, args[0], mask).to(output.dtype)
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
