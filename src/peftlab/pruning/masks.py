"""Masks as buffers: ``<attr>_mask`` next to each pruned parameter, applied in place.

Why not torch.nn.utils.prune's forward pre-hooks: they recompute ``weight = weight_orig * mask``
on every forward and backpropagate through the product (13 % more step time on the digits MLP,
PEER-FIGURES.md). Here the parameter itself holds the zeros: masks are multiplied in once after
each optimizer step (one fused ``_foreach_mul_``), and the buffer makes the mask part of every
``state_dict``/checkpoint. Checkpoints written with torch.nn.utils.prune masks still load
(see :mod:`peftlab.pruning.reparametrization`).

Gradients are masked too (:func:`mask_gradients`), as torch's reparametrisation does through its
product: a tensor hook on each pruned parameter multiplies every gradient computed for it —
by ``loss.backward()`` or by ``torch.autograd.grad`` (the per-task-gradient path) — by the mask,
so pruned entries count in no gradient norm, clipping threshold, Gram matrix or optimizer moment.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

SUFFIX = "_mask"


def mask_name(attr: str) -> str:
    """Buffer name of the mask of parameter ``attr``."""
    return attr + SUFFIX


def attach_mask(module: nn.Module, attr: str) -> torch.Tensor:
    """Register an all-ones mask buffer for ``module.<attr>`` (kept if one is already there)."""
    name = mask_name(attr)
    existing = getattr(module, name, None)
    if isinstance(existing, torch.Tensor):
        return existing
    param = getattr(module, attr)
    module.register_buffer(name, torch.ones_like(param, dtype=param.dtype))
    return getattr(module, name)


class _MaskGradient:
    """Tensor hook ``grad -> grad * mask``; reads the buffer at call time, so a mask replaced by
    ``module.to(device)`` or refilled by ``load_state_dict`` is the one applied."""

    __torch_unserializable__ = True  # hooks are rebuilt by whoever attaches masks; no pickling warning

    def __init__(self, module: nn.Module, attr: str):
        self.module, self.name = module, mask_name(attr)

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * getattr(self.module, self.name).to(grad.dtype)


def mask_gradients(module: nn.Module, attr: str) -> torch.utils.hooks.RemovableHandle | None:
    """Make every gradient of ``module.<attr>`` zero where its mask is (returns the hook's handle).

    A frozen parameter (e.g. a base weight under LoRA) gets no gradient, so it gets no hook (None).
    """
    param = getattr(module, attr)
    if not param.requires_grad:
        return None
    return param.register_hook(_MaskGradient(module, attr))


def get_mask(module: nn.Module, attr: str) -> torch.Tensor | None:
    """The mask buffer of ``module.<attr>``, or None."""
    mask = getattr(module, mask_name(attr), None)
    return mask if isinstance(mask, torch.Tensor) else None


def masked_pairs(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(full parameter name, module, attr)`` for every parameter with a mask buffer."""
    pairs = []
    for mname, module in model.named_modules():
        for bname, _ in module.named_buffers(recurse=False):
            if bname.endswith(SUFFIX):
                attr = bname[: -len(SUFFIX)]
                if isinstance(getattr(module, attr, None), nn.Parameter):
                    pairs.append((f"{mname}.{attr}" if mname else attr, module, attr))
    return pairs


@torch.no_grad()
def apply_masks(pairs: Iterable[tuple[nn.Module, str]]) -> None:
    """``param *= mask`` for every (module, attr), as one fused multi-tensor op."""
    params, masks = [], []
    for module, attr in pairs:
        params.append(getattr(module, attr))
        masks.append(getattr(module, mask_name(attr)))
    if params:
        torch._foreach_mul_(params, masks)


def reapply_masks(model: nn.Module) -> int:
    """``param *= mask`` for every masked parameter of ``model`` (e.g. after merging adapters into them)."""
    pairs = masked_pairs(model)
    apply_masks((m, a) for _, m, a in pairs)
    return len(pairs)


def remove_masks(model: nn.Module) -> int:
    """Make masks permanent: multiply them in and drop the buffers. Returns how many were removed."""
    pairs = masked_pairs(model)
    apply_masks((m, a) for _, m, a in pairs)
    for _, module, attr in pairs:
        delattr(module, mask_name(attr))
    return len(pairs)
