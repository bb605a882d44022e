"""GLS: geometric loss strategy (Chennupati et al., CVPR Workshops 2019, "MultiNet++: Multi-Stream
Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning"); LibMTL's ``GLS``.

No hyper-parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.distributed import all_reduce_sum
from peftlab.weighting.base import Weighting


class GLSWeighting(Weighting):
    """L = T·(Π_i L_i)^{1/T}: T × LibMTL's objective, so that equal losses give the equal-weighting sum.

    Its gradient is Σ_i α_i ∇L_i with α_i = (Π_j L_j)^{1/T} / L_i (α = 1 when all losses are
    equal; a task with a small loss gets a large weight). Under DDP α is computed from the losses
    averaged over the ranks (per task, over the ranks whose batch holds it) and the objective is
    Σ_i α_i L_i with α detached, so the averaged gradient is that of the global batch's GLS
    objective. Only the tasks present in the batch enter (T = their count). Losses must be > 0.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("last_alpha", torch.empty(0))

    def setup(self, task_names: Sequence[str]) -> None:
        """α = 1 before the first step."""
        super().setup(task_names)
        self.last_alpha = torch.ones(len(self.task_names), dtype=torch.float64)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ_i α_i L_i with α_i = geometric mean / L_i of the rank-averaged losses."""
        values, present = self._loss_vector(losses)
        totals = all_reduce_sum(torch.cat([values, present.double()]))
        t = len(self.task_names)
        seen = totals[t:] > 0
        mean = torch.where(seen, totals[:t] / totals[t:].clamp(min=1), torch.ones_like(values))
        geo = torch.exp(torch.log(mean[present]).mean())
        alpha = geo / mean
        self.last_alpha[present] = alpha[present].to(self.last_alpha)
        idx = [self.task_names.index(n) for n in losses]
        weights = alpha[idx].to(next(iter(losses.values())).dtype)
        return (weights * torch.stack(list(losses.values()))).sum()

    def alpha(self) -> dict[str, float]:
        """The weights of the last combination."""
        return {name: float(a) for name, a in zip(self.task_names, self.last_alpha)}
