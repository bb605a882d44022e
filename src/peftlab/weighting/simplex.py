"""Euclidean projection onto the probability simplex (MoDo's and SDMGrad's weight updates)."""

from __future__ import annotations

import torch


def project_onto_simplex(y: torch.Tensor) -> torch.Tensor:
    """argmin_{w ≥ 0, Σw = 1} ‖w − y‖, by the sort-and-threshold rule of the official MoDo / SDMGrad
    code and torchjd 0.18 (the same loop, so the result agrees to round-off)."""
    m = len(y)
    sorted_y = torch.sort(y, descending=True)[0]
    partial = y.new_zeros(())
    threshold = (torch.sum(y) - 1.0) / m
    for i in range(m - 1):
        partial = partial + sorted_y[i]
        candidate = (partial - 1.0) / (i + 1.0)
        if candidate > sorted_y[i + 1]:
            threshold = candidate
            break
    return (y - threshold).clamp(min=0.0)
