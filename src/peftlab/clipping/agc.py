"""Adaptive gradient clipping, unit-wise (Brock et al. 2021, NFNets)."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.clipping.base import Clipping
from peftlab.errors import ConfigError
from peftlab.validators import check_positive


class AGCClipping(Clipping):
    """For each unit i (row of a weight, i.e. one output neuron): if ‖G_i‖ > λ·max(‖W_i‖, ε),
    rescale G_i to that size. Biases and other 1-D parameters are treated as one unit each.

    Hand-written because torch has no AGC (timm's is not a dependency here). Parameters whose
    name starts with one of ``exclude`` are not clipped (the paper leaves the final classifier
    unclipped; by default the task heads).

    Args:
        clipping: λ (0.01 in the paper for batch sizes ≤ 4k).
        eps: ε, the floor on the weight norm (so zero-initialised weights can move).
        exclude: parameter-name prefixes left unclipped.
    """

    name = "agc"

    def __init__(self, clipping: float = 0.01, eps: float = 1e-3, exclude: Sequence[str] = ("heads.",), max_bad_steps: int = 5):
        super().__init__(max_bad_steps)
        self.clipping = check_positive("strategy.clipping.clipping", clipping)
        self.eps = check_positive("strategy.clipping.eps", eps)
        if isinstance(exclude, str) or not all(isinstance(e, str) for e in exclude):
            raise ConfigError("strategy.clipping.exclude", f"must be a list of parameter-name prefixes; got {exclude!r}")
        self.exclude = tuple(exclude)

    @staticmethod
    def _unit_norm(t: torch.Tensor) -> torch.Tensor:
        if t.ndim <= 1:
            return t.norm().reshape(())
        return t.flatten(1).norm(dim=1).reshape(-1, *([1] * (t.ndim - 1)))

    @torch.no_grad()
    def clip(self, module, optimizer) -> None:
        """Clip each unit's gradient relative to its weight norm."""
        for name, p in module.named_parameters():
            if p.grad is None or name.startswith(self.exclude):
                continue
            max_norm = self._unit_norm(p.detach().float()).clamp(min=self.eps) * self.clipping
            g_norm = self._unit_norm(p.grad.float())
            scale = torch.where(g_norm > max_norm, max_norm / g_norm.clamp(min=1e-6), torch.ones_like(g_norm))
            p.grad.mul_(scale.to(p.grad.dtype))
