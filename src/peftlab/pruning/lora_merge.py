"""Pruning a base model that carries peft LoRA adapters: gate pruned units, merge, re-mask.

Masks live on the base ``nn.Linear`` inside each LoRA layer (``base_layer``; see
:func:`peftlab.pruning.unit_groups.base_linear`). Two things keep pruned weights pruned:

* while training, a unit whose base rows are masked would still receive the adapter's update
  ``B·A·x`` on those rows, so it would not be dead and removing it at export would change the
  outputs. :func:`gate_pruned_lora_rows` zeroes a LoRA layer's output rows whose base rows
  (weight and bias) are fully masked — the masked model then equals the exported one;
* merging writes the dense update ``W + s·B·A`` into the base weight, refilling pruned entries;
  :func:`merge_and_remask` merges and multiplies every mask in again.

peft has merge (``merge``/``merge_and_unload``) but nothing that knows about pruning masks, hence
these two small helpers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from peftlab.pruning.masks import apply_masks, get_mask, masked_pairs


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every peft LoRA layer in ``model``."""
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def pruned_rows(linear: nn.Module) -> torch.Tensor | None:
    """Bool ``[out_features]``: rows whose weight mask is all zero (and bias masked or zero); None without a mask."""
    mask = get_mask(linear, "weight")
    if mask is None:
        return None
    dead = mask.reshape(mask.shape[0], -1).eq(0).all(1)
    bias = getattr(linear, "bias", None)
    if bias is not None:
        bias_mask = get_mask(linear, "bias")
        dead &= bias_mask.eq(0) if bias_mask is not None else bias.detach().eq(0)
    return dead


def gate_pruned_lora_rows(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Zero each LoRA layer's output rows whose base rows are pruned (a forward hook per layer).

    Read from the masks at every forward, so it follows the pruning schedule; a no-op for
    layers with no fully pruned row. Returns the hook handles (``.remove()`` to undo).
    """

    def hook(module, args, output):
        dead = pruned_rows(module.get_base_layer())
        if dead is None or not bool(dead.any()):
            return output
        return output * (~dead).to(output.dtype)

    return [layer.register_forward_hook(hook) for _, layer in lora_layers(model)]


@torch.no_grad()
def merge_and_remask(model: nn.Module, adapter_names: Sequence[str] | None = None) -> int:
    """Merge LoRA adapters into their base weights, replace each LoRA layer by its base layer, re-apply masks.

    ``adapter_names``: which adapters to merge (None: the active ones, peft's default). Rows the
    gate zeroed (fully pruned units) are zero after merging too, so :func:`peftlab.pruning.compaction.compact`
    removes them with outputs unchanged. Returns how many layers were merged.
    """
    layers = lora_layers(model)
    modules = dict(model.named_modules())
    for name, layer in layers:
        layer.merge(adapter_names=list(adapter_names) if adapter_names is not None else None)
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, layer.get_base_layer())
    apply_masks((m, a) for _, m, a in masked_pairs(model))
    return len(layers)
