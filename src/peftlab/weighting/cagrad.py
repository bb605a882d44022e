"""CAGrad: conflict-averse gradient descent (Liu et al. 2021)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting


class CAGradWeighting(GradientWeighting):
    """d = (g₀ + (c‖g₀‖/‖g_w‖)·g_w) / (1 + c²), g₀ the mean gradient, g_w = Σ w_i g_i with

    w = argmin_{w ∈ simplex} g_wᵀ g₀ + c‖g₀‖·‖g_w‖ — the reference implementation's
    formulation, solved, as there, with scipy's SLSQP on the T×T Gram matrix (deterministic, so
    every DDP rank gets the same w). c = 0 gives the mean gradient. Reported α is T × the
    coefficients of d (equal-weighting scale: c = 0 gives α = 1 for every task).

    Args:
        c: conflict aversion c ≥ 0 (the paper's default 0.4).
    """

    def __init__(self, c: float = 0.4, mode: str = "params"):
        super().__init__(mode=mode)
        self.c = check_positive("strategy.weighting.c", c, allow_zero=True)

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """T × the coefficients of d."""
        t = len(gram)
        mean = np.full(t, 1.0 / t)
        if self.c == 0 or t == 1:
            return t * mean
        g0_norm = np.sqrt(max(mean @ gram @ mean, 0.0) + 1e-8)
        scale = self.c * g0_norm + 1e-8
        gb = gram @ mean

        def objective(w):
            return w @ gb + scale * np.sqrt(max(w @ gram @ w, 0.0) + 1e-8)

        res = minimize(objective, mean, bounds=[(0.0, 1.0)] * t, constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},), method="SLSQP")
        w = res.x
        gw_norm = np.sqrt(max(w @ gram @ w, 0.0))
        lmbda = scale / (gw_norm + 1e-8)
        return t * (mean + lmbda * w) / (1.0 + self.c**2)
