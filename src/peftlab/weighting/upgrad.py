"""UPGrad: unconflicting projection of gradients (Quinton & Rey 2024, "Jacobian Descent for
Multi-Objective Optimization", arXiv:2406.16232); torchjd's default aggregator.

Defaults as torchjd 0.18's ``UPGrad()``: uniform preference, ``norm_eps = reg_eps = 1e-4``.
"""

from __future__ import annotations

import numpy as np

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.dual_cone import normalised_gram, project_weights


class UPGradWeighting(GradientWeighting):
    """Project every task gradient onto the dual cone of all of them (the set of directions that
    conflict with none) and average the projections: d = (1/T) Σ_i π(g_i).

    π(g_i) = Gᵀv_i with v_i = argmin_{v ≥ e_i} vᵀ A v (A the Gram matrix, normalised by its trace
    plus ``reg_eps``·I as in torchjd), so only the T×T Gram matrix is used. d never conflicts
    with any task (g_i·d ≥ 0) and equals the mean gradient when no two tasks conflict. Reported
    α = T × torchjd's weights (the equal-weighting scale: the update is T·d, the sum gradient when
    nothing conflicts).

    Args:
        norm_eps: below this trace of the Gram matrix (sum of squared gradient norms) the Gram
            matrix is treated as 0 and the update is the plain sum (torchjd's default 1e-4).
        reg_eps: ridge added to the normalised Gram matrix so the programme is strictly convex (1e-4).
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4, mode: str = "params"):
        super().__init__(mode=mode)
        self.norm_eps = check_positive("strategy.weighting.norm_eps", norm_eps, allow_zero=True)
        self.reg_eps = check_positive("strategy.weighting.reg_eps", reg_eps)

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """Σ_i v_i (= T × the mean of the projections' weights)."""
        a = normalised_gram(gram, self.norm_eps, self.reg_eps)
        t = len(gram)
        return sum(project_weights(np.eye(t)[i], a) for i in range(t))
