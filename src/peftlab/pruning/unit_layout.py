"""Where a projection layer keeps its output units: ``nn.Linear`` (weight ``[out, in]``: a unit is a
row) or GPT-2's ``transformers.pytorch_utils.Conv1D`` (weight ``[in, out]``: a unit is a column).

Structured pruning (:mod:`peftlab.pruning.unit_groups`) and compaction read and cut weights through
these few helpers, so one code path serves both layouts. Conv1D is recognised without importing
transformers (that takes seconds; a model holding one has loaded it already).
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def is_conv1d(module: nn.Module | None) -> bool:
    """True for GPT-2's ``Conv1D`` (a linear layer whose weight is ``[in, out]``)."""
    cls = getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
    return cls is not None and isinstance(module, cls)


def is_projection(module: nn.Module | None) -> bool:
    """A layer whose output units structured pruning can cut: ``nn.Linear`` or ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def out_features(layer: nn.Module) -> int:
    """Number of output units of ``layer``."""
    return int(layer.nf) if is_conv1d(layer) else int(layer.out_features)


def in_features(layer: nn.Module) -> int:
    """Number of inputs ``layer`` reads."""
    return int(layer.weight.shape[0]) if is_conv1d(layer) else int(layer.in_features)


def as_rows(tensor: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """A weight-shaped tensor of ``layer`` seen as ``[out, in]`` (one row per output unit)."""
    return tensor.t() if is_conv1d(layer) else tensor


def keep_outputs(layer: nn.Module, idx: torch.Tensor) -> None:
    """Keep only output units ``idx`` of ``layer`` (weight rows, or Conv1D columns; bias entries)."""
    conv = is_conv1d(layer)
    layer.weight = nn.Parameter((layer.weight[:, idx] if conv else layer.weight[idx]).clone())
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias[idx].clone())
    if conv:
        layer.nf = len(idx)
    else:
        layer.out_features = len(idx)


def keep_inputs(layer: nn.Module, idx: torch.Tensor) -> None:
    """Keep only inputs ``idx`` of ``layer`` (weight columns, or Conv1D rows)."""
    conv = is_conv1d(layer)
    layer.weight = nn.Parameter((layer.weight[idx] if conv else layer.weight[:, idx]).clone())
    if not conv:
        layer.in_features = len(idx)
