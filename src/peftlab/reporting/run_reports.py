"""How callbacks contribute to a run's report.

A callback may implement either method below; the recipes look for them on every callback.
This keeps ``train.py`` free of special cases: a pruning callback reports sparsity, the α
tracker writes its plot, and neither needs an edit to the recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn


def prunable_from_callbacks(callbacks: Iterable[Any], model: nn.Module) -> list[tuple[str, torch.Tensor]] | None:
    """The first callback's ``prunable_parameters(model)``: (name, effective weight) pairs; None if no callback defines it."""
    for cb in callbacks:
        if hasattr(cb, "prunable_parameters"):
            return cb.prunable_parameters(model)
    return None


def reports_from_callbacks(callbacks: Iterable[Any], model: nn.Module, run_dir: Path) -> dict[str, Any]:
    """Merge every callback's ``run_report(model, run_dir) -> dict`` (extra metrics.json keys, files written)."""
    merged: dict[str, Any] = {}
    for cb in callbacks:
        if hasattr(cb, "run_report"):
            merged.update(cb.run_report(model, run_dir))
    return merged
