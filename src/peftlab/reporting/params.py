"""Parameter counts: total, trainable, non-zero, prunable, sparsity, and what sharing saves."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from peftlab.sharing.base import PolicyBody, base_weights


def default_prunable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Weights of the backbone's linear and convolution layers (heads, biases, norms and adapters excluded).

    A sharing-policy body names them (``PolicyBody.base_weights()``: the adapters' own layers
    are not base weights); any other ``model.body`` (or the model itself) gives all of its own.
    """
    body = getattr(model, "body", model)
    # after torch.nn.utils.prune the effective weight is a plain attribute, which these read
    weights = body.base_weights() if isinstance(body, PolicyBody) else base_weights(body)
    return [(f"body.{name}", weight) for name, weight in weights]


def _effective_parameters(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """Every parameter as the forward pass sees it (pruned ``*_orig`` replaced by the masked weight)."""
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if pname.endswith("_orig"):
                base = pname[: -len("_orig")]
                yield f"{module_name}.{base}", getattr(module, base)
            else:
                yield f"{module_name}.{pname}" if module_name else pname, param


def trainable_count(model: nn.Module) -> int:
    """Parameters the optimizer trains: what the sharing policy says (``model.trainable_parameters()``), else ``requires_grad``."""
    if hasattr(model, "trainable_parameters"):
        return sum(p.numel() for p in model.trainable_parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_parameters(model: nn.Module, prunable: list[tuple[str, torch.Tensor]] | None = None) -> dict[str, float]:
    """``{total, trainable, trainable_pct, nonzero, prunable, sparsity}``; sparsity = zeros / prunable, trainable_pct in % of total."""
    params = list(_effective_parameters(model))
    prunable = default_prunable(model) if prunable is None else prunable
    prunable_n = sum(t.numel() for _, t in prunable)
    prunable_zeros = sum(int((t == 0).sum()) for _, t in prunable)
    total = sum(t.numel() for _, t in params)
    trainable = trainable_count(model)
    return {
        "total": total,
        "trainable": trainable,
        "trainable_pct": 100.0 * trainable / total if total else 0.0,
        "nonzero": sum(int((t != 0).sum()) for _, t in params),
        "prunable": prunable_n,
        "sparsity": prunable_zeros / prunable_n if prunable_n else 0.0,
    }


def sharing_comparison(model: nn.Module) -> dict[str, int]:
    """Parameters of this model vs. the same tasks with hard sharing and with one backbone per task."""
    body, heads = model.body, model.heads
    if hasattr(body, "backbones"):
        one_backbone = sum(p.numel() for p in next(iter(body.backbones.values())).parameters())
    else:
        one_backbone = sum(p.numel() for p in body.parameters())
    head_params = sum(p.numel() for p in heads.parameters())
    num_tasks = len(model.task_names)
    return {"shared": one_backbone + head_params, "separate": num_tasks * one_backbone + head_params}
