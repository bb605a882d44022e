"""FairGrad: α-fair multi-task learning (Ban & Ji, ICML 2024, "Fair Resource Allocation in
Multi-Task Learning", arXiv:2402.15638).

Defaults: α-fairness ``alpha: 1.0`` (proportional fairness, the paper's default), no iteration
cap (torchjd 0.18's ``FairGrad(alpha, max_iters=None)``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting


class FairGradWeighting(GradientWeighting):
    """The update Σ_i w_i g_i with w > 0 solving A w = w^{-1/α} (A the Gram matrix): every task's
    directional gain g_i·d equals w_i^{-1/α}, the first-order condition of maximising the α-fair
    utility Σ_i (g_i·d)^{1-α}/(1-α) over ‖d‖ ≤ 1.

    Solved as the reference code and torchjd do, with scipy's bounded ``least_squares`` from the
    uniform point (deterministic: every DDP rank gets the same w). α = 0 is linear scalarisation
    (w = 1/T). w carries its own scale (it is not normalised), so the reported α is w unchanged.

    Args:
        alpha: fairness α ≥ 0 (0: utilitarian mean; 1: proportional fairness; → ∞: max-min fair).
        max_iters: cap on the solver's function evaluations (null: scipy's default).
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, alpha: float = 1.0, max_iters: int | None = None, mode: str = "params"):
        super().__init__(mode=mode)
        self.fair_alpha = check_positive("strategy.weighting.alpha", alpha, allow_zero=True)
        self.max_iters = None if max_iters is None else int(check_positive("strategy.weighting.max_iters", max_iters))

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """The α-fair weights w."""
        t = len(gram)
        uniform = np.ones(t) / t
        if self.fair_alpha == 0:
            return uniform
        res = least_squares(lambda x: gram @ x - np.power(x, -1.0 / self.fair_alpha), uniform, bounds=(0, np.inf), max_nfev=self.max_iters)
        return res.x
