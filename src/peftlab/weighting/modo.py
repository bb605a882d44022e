"""MoDo: multi-objective gradient with double sampling (Chen et al., JMLR 2024 / NeurIPS 2023,
"Three-Way Trade-Off in Multi-Objective Learning: Optimization, Generalization and
Conflict-Avoidance", arXiv:2305.20057).

Defaults as torchjd 0.18's ``MoDoWeighting()``: ``gamma: 0.1``, ``rho: 0.1``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.simplex import project_onto_simplex


class MoDoWeighting(GradientWeighting):
    """Task weights λ on the simplex moved by one projected gradient step a combination:
    λ ← Π_Δ(λ − γ(Aλ + ρλ)), then the update Σ T·λ_i g_i (α = T·λ, the equal-weighting scale;
    torchjd's λ sums to 1). λ starts uniform.

    Where we differ from the paper and torchjd's usage: A is the Gram matrix of one batch's task
    gradients (G Gᵀ), not J₁J₂ᵀ of two independent batches (the per-task backward computes one
    batch's gradients; the double-sampling estimate would cost two more backward passes). The
    weight update itself is torchjd's, checked on the same matrix. λ is a buffer (checkpointed,
    identical on every rank: the Gram matrix is that of the rank-averaged rows, rank-summed in
    ``representation`` mode). With a subset of tasks present (mixed-task batches) only their λ
    moves, projected onto their share of the simplex.

    Args:
        gamma: step γ > 0 of λ.
        rho: ℓ2 regularisation ρ ≥ 0 of λ.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, gamma: float = 0.1, rho: float = 0.1, mode: str = "params"):
        super().__init__(mode=mode)
        self.gamma = check_positive("strategy.weighting.gamma", gamma)
        self.rho = check_positive("strategy.weighting.rho", rho, allow_zero=True)
        self.register_buffer("lambd", torch.empty(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str]) -> None:
        """λ uniform (1/T)."""
        super().setup(task_names)
        self.lambd = torch.full((len(self.task_names),), 1.0 / len(self.task_names), dtype=torch.float64)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """T·λᵀG after one projected step of λ on the rows' Gram matrix."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        gram = self.gram_matrix(rows, per_rank).cpu()
        lam = self.lambd.cpu()[idx]
        share = float(lam.sum())
        # present tasks holding no weight (the projection zeroed them; a batch of those tasks only):
        # step from uniform weights for this batch and write back nothing (0 · λ), never 0/0
        lam = lam / share if share > 0 else torch.full_like(lam, 1.0 / len(idx))
        lam = project_onto_simplex(lam - self.gamma * (gram @ lam + self.rho * lam))
        self.lambd[idx] = (lam * share).to(self.lambd)
        return self.record(len(idx) * lam.numpy(), idx).to(rows) @ rows
