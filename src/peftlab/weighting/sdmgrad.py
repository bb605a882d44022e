"""SDMGrad: stochastic direction-oriented multi-objective gradient descent (Xiao et al., NeurIPS 2023,
"Direction-oriented Multi-objective Learning: Simple and Provable Stochastic Algorithms",
arXiv:2305.18409).

Defaults as torchjd 0.18's ``SDMGradWeighting()``: ``lr: 10.0``, ``momentum: 0.5``, ``n_iter: 20``,
``lambda_: 0.3`` (the official experiments' value; LibMTL's too), uniform preference.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_fraction, check_int, check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.simplex import project_onto_simplex


class SDMGradWeighting(GradientWeighting):
    """Weights w on the simplex solved by ``n_iter`` steps of projected SGD with momentum on
    ½‖Gᵀ(w + λw̃)‖² from the previous step's w, with A = G Gᵀ scaled by the squared mean of the
    gradient norms (as the official code and torchjd); the update is Σ T·c_i g_i with
    c = (w + λw̃) / (1 + λ) and w̃ uniform (α = T·c, the equal-weighting scale; torchjd's c sums to 1).

    Where we differ from the paper and torchjd's usage: A is the Gram matrix of one batch's task
    gradients, not J₁J₂ᵀ of two independent batches (as :class:`~peftlab.weighting.modo.MoDoWeighting`).
    The inner solve is torchjd's, checked on the same matrix. w is a buffer (checkpointed,
    identical on every rank); the momentum restarts at every combination, as in torchjd. With a
    subset of tasks present (mixed-task batches) only their w moves, on their share of the
    simplex, with w̃ uniform over them.

    Args:
        lr: step > 0 of the inner SGD.
        momentum: momentum in [0, 1) of the inner SGD.
        n_iter: inner SGD steps per combination, ≥ 1.
        lambda_: pull λ ≥ 0 towards the preference direction (the mean gradient).
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, lr: float = 10.0, momentum: float = 0.5, n_iter: int = 20, lambda_: float = 0.3, mode: str = "params"):
        super().__init__(mode=mode)
        self.lr = check_positive("strategy.weighting.lr", lr)
        self.momentum = check_fraction("strategy.weighting.momentum", momentum)
        self.n_iter = check_int("strategy.weighting.n_iter", n_iter, minimum=1)
        self.lambda_ = check_positive("strategy.weighting.lambda_", lambda_, allow_zero=True)
        self.register_buffer("w", torch.empty(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str]) -> None:
        """w uniform (1/T)."""
        super().setup(task_names)
        self.w = torch.full((len(self.task_names),), 1.0 / len(self.task_names), dtype=torch.float64)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """T·cᵀG after the inner solve of w on the rows' Gram matrix."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        gram = self.gram_matrix(rows, per_rank).cpu()
        w = self.w.cpu()[idx]
        share = float(w.sum())
        # present tasks holding no weight (a batch of tasks the projection zeroed): start this batch's
        # solve from uniform weights and write back nothing (0 · w), never 0/0
        w = w / share if share > 0 else torch.full_like(w, 1.0 / len(idx))
        pref = torch.full_like(w, 1.0 / len(idx))
        scale = torch.diag(gram).clamp(min=0.0).sqrt().mean()
        a = gram / (scale.pow(2) + 1e-8)
        velocity = None
        for _ in range(self.n_iter):
            grad = a @ (w + self.lambda_ * pref)
            velocity = grad if velocity is None else self.momentum * velocity + grad
            w = project_onto_simplex(w - self.lr * velocity)
        self.w[idx] = (w * share).to(self.w)
        coeffs = (w + self.lambda_ * pref) / (1.0 + self.lambda_)
        return self.record(len(idx) * coeffs.numpy(), idx).to(rows) @ rows
