"""MGDA: the min-norm point of the convex hull of task gradients (Sener & Koltun 2018)."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from peftlab.weighting.base import GradientWeighting


def min_norm_weights(gram: np.ndarray) -> np.ndarray:
    """argmin_{w ≥ 0, Σw = 1} wᵀ A w.

    Exact for up to 10 tasks: the optimum lies in the relative interior of one face of the
    simplex, where it solves a small equality-constrained linear system, so every face is tried
    and the best feasible solution kept (2^T − 1 tiny solves; deterministic, no tolerance
    tuning). For more tasks, Frank–Wolfe with exact line search (the paper's solver).
    """
    t = len(gram)
    if t == 1:
        return np.ones(1)
    if t <= 10:
        best, best_val = None, np.inf
        for k in range(1, t + 1):
            for face in combinations(range(t), k):
                f = list(face)
                kkt = np.zeros((k + 1, k + 1))
                kkt[:k, :k] = gram[np.ix_(f, f)]
                kkt[:k, k] = kkt[k, :k] = 1.0
                rhs = np.zeros(k + 1)
                rhs[k] = 1.0
                sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
                if (sol < -1e-12).any():
                    continue
                w = np.zeros(t)
                w[f] = np.clip(sol, 0, None)
                w /= w.sum()
                val = w @ gram @ w
                if val < best_val - 1e-15:
                    best, best_val = w, val
        return best
    w = np.full(t, 1.0 / t)
    for _ in range(250):
        grad = gram @ w
        j = int(np.argmin(grad))
        d = -w.copy()
        d[j] += 1.0
        denom = d @ gram @ d
        if denom <= 1e-20:
            break
        step = float(np.clip(-(w @ gram @ d) / denom, 0.0, 1.0))
        if step < 1e-8:
            break
        w = w + step * d
    return w


class MGDAWeighting(GradientWeighting):
    """Update along Σ w_i g_i with w the min-norm point of the simplex (a common descent direction).

    Reported α = T·w (the equal-weighting scale, Σα = T).
    """

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """T × the min-norm weights."""
        return len(gram) * min_norm_weights(gram)
