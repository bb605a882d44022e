"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022, "Multi-Task Learning
as a Bargaining Game", arXiv:2202.01017).

Defaults as torchjd 0.18's ``NashMTL(n_tasks)`` (and the official code): ``max_norm: 1.0``,
``update_weights_every: 1``, ``optim_niter: 20``. Needs cvxpy with the ECOS solver (a dependency
of peftlab).
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

import numpy as np
import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_int, check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.nash_mtl_solver import NashProblem


class NashMTLWeighting(GradientWeighting):
    """The update Σ α_i g_i with α the Nash bargaining solution α_i (Aα)_i = 1 (A = G Gᵀ, the Gram
    matrix of the task gradients), found by torchjd's sequence of convex problems on A / ‖A‖_F
    (:class:`~peftlab.weighting.nash_mtl_solver.NashProblem`), each started at the previous
    step's α; then, when ‖Σ α_i g_i‖ > ``max_norm`` > 0, α is scaled down to that norm.

    α is recomputed on every ``update_weights_every``-th combination and reused in between
    (torchjd's call counter; a combination is one micro-batch). α is on torchjd's scale (not
    normalised: Nash-MTL's α sets the step length); it and the counter are buffers, so a resume
    is exact; the cvxpy problem holds no state (rebuilt after a resume). With a subset of tasks
    present (mixed-task batches) the problem is solved for them, from their previous α. Both
    modes: the Gram matrix is rank-summed in ``representation`` mode, so α is identical on every rank.

    Args:
        max_norm: cap on the norm of the combined update (0: none), ≥ 0.
        update_weights_every: recompute α every this many combinations, ≥ 1.
        optim_niter: at most this many convex solves per recomputation, ≥ 1.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, optim_niter: int = 20, mode: str = "params"):
        super().__init__(mode=mode)
        self.max_norm = check_positive("strategy.weighting.max_norm", max_norm, allow_zero=True)
        self.update_weights_every = check_int("strategy.weighting.update_weights_every", update_weights_every, minimum=1)
        self.optim_niter = check_int("strategy.weighting.optim_niter", optim_niter, minimum=1)
        if importlib.util.find_spec("cvxpy") is None or importlib.util.find_spec("ecos") is None:
            raise ConfigError("strategy.weighting", "nash_mtl needs cvxpy and ecos: pip install 'cvxpy>=1.4' ecos")
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("prev_alpha", torch.empty(0, dtype=torch.float64))
        self._problems: dict[int, NashProblem] = {}

    def setup(self, task_names: Sequence[str]) -> None:
        """α starts at 1 for every task (torchjd's start)."""
        super().setup(task_names)
        self.prev_alpha = torch.ones(len(self.task_names), dtype=torch.float64)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """Σ α_i g_i with α solved (or reused) from the rows' Gram matrix."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        gram = self.gram_matrix(rows, per_rank).cpu().numpy()
        alpha = self.prev_alpha.cpu().numpy()[idx]
        if int(self.calls) % self.update_weights_every == 0:
            norm = float(np.linalg.norm(gram))
            if norm > 0:  # a zero Gram matrix (every gradient zero) keeps the previous α
                if len(idx) not in self._problems:
                    self._problems[len(idx)] = NashProblem(len(idx))
                problem = self._problems[len(idx)]
                alpha = np.asarray(problem.solve(gram / norm, norm, alpha, self.optim_niter), dtype=np.float64)
                self.prev_alpha[idx] = torch.as_tensor(alpha, dtype=torch.float64).to(self.prev_alpha.device)
        self.calls += 1
        if self.max_norm > 0:
            length = float(np.sqrt(max(alpha @ gram @ alpha, 0.0)))
            if length > self.max_norm:
                alpha = alpha / length * self.max_norm
        return self.record(alpha, idx).to(rows) @ rows
