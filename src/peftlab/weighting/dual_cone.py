"""Projection onto the dual cone of the task gradients, in weight space (UPGrad, DualProj).

For gradients G (rows g_i) with Gram matrix A = G Gᵀ, the projection of Gᵀu onto the dual cone
{x : G x ≥ 0} is Gᵀv with v = argmin_{v ≥ u} vᵀ A v (Proposition 1 of Quinton & Rey 2024,
"Jacobian Descent for Multi-Objective Optimization"). torchjd solves that quadratic programme with
quadprog after normalising A by its trace and adding ``reg_eps``·I; here the same programme,
same normalisation, is solved exactly as a non-negative least-squares problem
(v = u + z, z ≥ 0, A = L Lᵀ: minimise ‖Lᵀz + Lᵀu‖²) with scipy's active-set NNLS, so no extra
solver dependency is needed and the result agrees with quadprog's to round-off.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def normalised_gram(gram: np.ndarray, norm_eps: float, reg_eps: float) -> np.ndarray:
    """A / tr(A) + reg_eps·I (A = 0 when tr(A) < norm_eps), as torchjd's ``QuadprogProjector`` does."""
    trace = float(np.trace(gram))
    scaled = np.zeros_like(gram) if trace < norm_eps else gram / trace
    return scaled + reg_eps * np.eye(len(gram))


def project_weights(u: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """argmin_{v ≥ u} vᵀ A v for a positive-definite A (the weights of the projection of Gᵀu)."""
    lower = np.linalg.cholesky(gram)  # A = L Lᵀ
    z, _ = nnls(lower.T, -lower.T @ u)
    return u + z
