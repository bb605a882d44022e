"""Equal weighting: the plain sum of task losses."""

from __future__ import annotations

import torch

from peftlab.weighting.base import Weighting


class EqualWeighting(Weighting):
    """L = Σ_i L_i (α_i = 1 for every task)."""

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the losses present."""
        return torch.stack(list(losses.values())).sum()

    def alpha(self) -> dict[str, float]:
        """1 for every task."""
        return {name: 1.0 for name in self.task_names}
