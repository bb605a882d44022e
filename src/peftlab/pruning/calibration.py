"""Calibration activations: the inputs each prunable layer sees on a few training batches.

Wanda and SparseGPT score a layer from its inputs ``X`` (``[tokens, in_features]``). Layers are
visited in the order the forward pass reaches them, and each layer's inputs are recorded with
every layer before it already pruned (the papers' sequential scheme). Layers inside a chain of
transformer blocks go block by block from cached block inputs (:mod:`peftlab.pruning.blockwise`);
the others (an MLP's layers, a pooler) one at a time here: a forward pre-hook records the layer's
input and stops the pass there, so calibrating such a layer costs the forward up to it. Only
statistics of ``X`` are kept (a callback folds each batch into them), never the activations.
Padded token positions (``attention_mask`` 0) are left out of the statistics.

``run(batch)`` is the caller's forward of one batch (the model, inputs on its device, eval mode,
no gradients); this module never reads a model's structure.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from peftlab.distributed import all_reduce_sum, world_size

Run = Callable[[Any], Any]


class _Reached(Exception):
    """Raised by the recording hook: the layer's input is recorded, the rest of the forward is not needed."""


def forward_order(modules: Sequence[nn.Module], run: Run, batch: Any) -> list[int]:
    """Indices of ``modules`` in the order one forward of ``batch`` first calls them (uncalled ones last)."""
    order: list[int] = []
    handles = []
    for i, module in enumerate(modules):

        def hook(_m, _args, i=i):
            if i not in order:
                order.append(i)

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            run(batch)
    finally:
        for h in handles:
            h.remove()
    return order + [i for i in range(len(modules)) if i not in order]


def token_mask(batch: Any) -> torch.Tensor | None:
    """The batch's ``attention_mask`` (``[batch, seq]``, 1 = real token), or None (no padding to leave out)."""
    inputs = batch.get("inputs", batch) if isinstance(batch, dict) else None
    mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
    return mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None


def layer_inputs(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """A layer's input as ``[tokens, in_features]`` float32, padded positions (``mask`` 0) dropped.

    ``mask`` applies only when ``x`` is ``[batch, seq, in]`` with ``mask``'s ``[batch, seq]``
    (a pooler's ``[batch, in]`` input keeps every row).
    """
    x = x.detach()
    if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
        return x[mask.to(x.device).bool()].float()
    return x.reshape(-1, x.shape[-1]).float()


def record_inputs(module: nn.Module, run: Run, batches: Iterable[Any], fold: Callable[[torch.Tensor], None], use_mask: bool = True) -> int:
    """Call ``fold(X)`` with ``module``'s input of every batch (``[tokens, in]``); returns the token count.
    ``use_mask=False``: padded positions are kept (a body that reorders rows by task: the batch's mask does not line up)."""
    seen = 0
    mask: torch.Tensor | None = None

    def hook(_m, args):
        nonlocal seen
        x = layer_inputs(args[0], mask)
        seen += x.shape[0]
        fold(x)
        raise _Reached

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for batch in batches:
                mask = token_mask(batch) if use_mask else None
                try:
                    run(batch)
                except _Reached:
                    pass
    finally:
        handle.remove()
    return seen


def summed_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over DDP ranks (each calibrates on its own shard; all then prune alike)."""
    return all_reduce_sum(t) if world_size() > 1 else t
