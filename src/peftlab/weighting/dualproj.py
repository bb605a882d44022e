"""DualProj: the mean gradient projected onto the dual cone of the task gradients (the projection
of Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning", Eq. 11, as an
aggregator in Quinton & Rey 2024 / torchjd).

Defaults as torchjd 0.18's ``DualProj()``: uniform preference, ``norm_eps = reg_eps = 1e-4``.
"""

from __future__ import annotations

import numpy as np

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.dual_cone import normalised_gram, project_weights


class DualProjWeighting(GradientWeighting):
    """d = π((1/T) Σ_i g_i): the closest direction to the mean gradient that conflicts with no task.

    The weights v = argmin_{v ≥ 1/T} vᵀ A v (A the Gram matrix normalised as in torchjd), so only
    the T×T Gram matrix is used. Reported α = T·v (equal-weighting scale: α = 1 when nothing
    conflicts).

    Args:
        norm_eps: below this trace of the Gram matrix the update is the plain sum (torchjd: 1e-4).
        reg_eps: ridge added to the normalised Gram matrix (torchjd: 1e-4).
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4, mode: str = "params"):
        super().__init__(mode=mode)
        self.norm_eps = check_positive("strategy.weighting.norm_eps", norm_eps, allow_zero=True)
        self.reg_eps = check_positive("strategy.weighting.reg_eps", reg_eps)

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """T × the projection's weights."""
        t = len(gram)
        return t * project_weights(np.full(t, 1.0 / t), normalised_gram(gram, self.norm_eps, self.reg_eps))
