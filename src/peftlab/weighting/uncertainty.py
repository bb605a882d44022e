"""Uncertainty weighting (Kendall, Gal & Cipolla 2018): learned α that cannot collapse."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.weighting.base import Weighting


class UncertaintyWeighting(Weighting):
    """L = Σ_i exp(−s_i)·L_i + s_i with s_i = log σ_i² learned by the model's optimizer.

    Why this and not "α_i ← α_i − η ∂L/∂α_i" on Σ α_i L_i: that gradient is L_i ≥ 0, so every α
    shrinks forever. Here the regulariser s_i makes the optimum finite: ∂L/∂s_i = 1 − α_i L_i = 0
    at α_i = 1/L_i, so α stays positive (α = exp(−s)) and bounded by 1/L_i. Under DDP the
    gradient of s is averaged like any other parameter gradient.

    Args:
        init_log_var: s₀ (0 means α = 1 at the start).
    """

    def __init__(self, init_log_var: float = 0.0):
        super().__init__()
        if not isinstance(init_log_var, (int, float)) or isinstance(init_log_var, bool):
            raise ConfigError("strategy.weighting.init_log_var", f"must be a number; got {init_log_var!r}")
        self.init_log_var = float(init_log_var)
        self.log_vars = nn.Parameter(torch.empty(0))

    def setup(self, task_names: Sequence[str]) -> None:
        """One s_i per task, all s₀."""
        super().setup(task_names)
        self.log_vars = nn.Parameter(torch.full((len(self.task_names),), self.init_log_var))
        self._index = {n: i for i, n in enumerate(self.task_names)}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ exp(−s_i) L_i + s_i over the tasks present, s_i paired with L_i by task name."""
        s = self.log_vars[[self._index[n] for n in losses]]
        values = torch.stack(list(losses.values()))
        return (torch.exp(-s) * values + s).sum()

    def alpha(self) -> dict[str, float]:
        """α_i = exp(−s_i)."""
        return {n: float(a) for n, a in zip(self.task_names, torch.exp(-self.log_vars.detach()))}
