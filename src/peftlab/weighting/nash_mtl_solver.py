"""Nash-MTL's step decision (Navon et al. 2022, Algorithm 1) as the official code and torchjd 0.18 solve it.

A sequence of convex problems (the concave term of the bargaining objective linearised at the
previous α), each solved by ECOS through cvxpy: the same modelling library and solver as the
official implementation, LibMTL and torchjd, so the iterates agree to the solver's tolerance.
cvxpy is imported here only (it takes a second to import), when a Nash-MTL step is first solved.
"""

from __future__ import annotations

import warnings

import numpy as np


class NashProblem:
    """The parametrised problem for ``k`` tasks (built once per task count; holds no training state:
    ECOS does not warm-start, so a problem rebuilt after a resume gives the same iterates)."""

    def __init__(self, k: int):
        import cvxpy as cp

        self.cp = cp
        self.alpha = cp.Variable(shape=(k,), nonneg=True)
        self.prev = cp.Parameter(shape=(k,), value=np.ones(k))
        self.gtg = cp.Parameter(shape=(k, k), value=np.eye(k))
        self.norm = cp.Parameter(shape=(1,), value=np.array([1.0]))
        g_prev = self.gtg @ self.prev
        phi_grad = 1 / self.prev + (1 / g_prev) @ self.gtg  # derivative of the linearised term at prev
        phi = phi_grad @ (self.alpha - self.prev)
        g_alpha = self.gtg @ self.alpha
        constraints = [-cp.log(a * self.norm) - cp.log(ga) <= 0 for a, ga in zip(self.alpha, g_alpha)]
        self.problem = cp.Problem(cp.Minimize(cp.sum(g_alpha) + phi / self.norm), constraints)

    def solve(self, gtg: np.ndarray, norm: float, start: np.ndarray, iterations: int) -> np.ndarray:
        """The new α from ``start`` (the previous α) for the normalised Gram matrix ``gtg`` (= G Gᵀ / ``norm``).

        As torchjd's ``_solve_optimization``: up to ``iterations`` solves, stopping when the
        solve fails, when Gα ≈ 1/α (1e-3) or when α stops moving (1e-6); a failed solve keeps
        the previous iterate.
        """
        self.gtg.value = gtg
        self.norm.value = np.array([norm])
        alpha_t = start
        for _ in range(iterations):
            self.alpha.value = alpha_t
            self.prev.value = alpha_t
            try:
                with warnings.catch_warnings():  # "not DPP": the problem is re-canonicalised each solve, as in torchjd
                    warnings.simplefilter("ignore", UserWarning)
                    self.problem.solve(solver=self.cp.ECOS, warm_start=True, max_iters=100)
            except (self.cp.SolverError, ValueError):  # ECOS failures on degenerate Gram matrices (as torchjd)
                self.alpha.value = self.prev.value
            if self._converged(gtg, alpha_t):
                break
            alpha_t = self.alpha.value
        return alpha_t

    def _converged(self, gtg: np.ndarray, alpha_t: np.ndarray) -> bool:
        """torchjd's stop criteria."""
        return bool(self.alpha.value is None or np.linalg.norm(gtg @ alpha_t - 1 / (alpha_t + 1e-10)) < 1e-3 or np.linalg.norm(self.alpha.value - self.prev.value) < 1e-6)
