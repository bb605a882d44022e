"""IMTL-G: impartial multi-task learning, gradient part (Liu et al. 2021)."""

from __future__ import annotations

import numpy as np

from peftlab.weighting.base import GradientWeighting


class IMTLWeighting(GradientWeighting):
    """Find α (Σα = 1) such that d = Σ α_i g_i has equal projections on every unit gradient u_i.

    Closed form of the paper: α_{2:T} = g_1 Uᵀ (D Uᵀ)⁻¹ with D rows g_1 − g_i and U rows
    u_1 − u_i; α_1 = 1 − Σ α_{2:T}. Every product is a Gram-matrix entry divided by norms, so
    nothing of size P is built. Reported α is T × that (equal-weighting scale).
    """

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """T × the IMTL-G weights."""
        t = len(gram)
        if t == 1:
            return np.ones(1)
        norms = np.sqrt(np.clip(np.diag(gram), 1e-20, None))
        a = gram / norms[None, :]  # a[i, j] = g_i · u_j
        gu = a[0, 0] - a[0, 1:]  # g_1 · (u_1 − u_j)
        du = a[0, 0] - a[0, 1:][None, :] - a[1:, 0][:, None] + a[1:, 1:]  # (g_1 − g_i)·(u_1 − u_j)
        rest = gu @ np.linalg.pinv(du)
        return t * np.concatenate([[1.0 - rest.sum()], rest])
