"""Aligned-MTL: independent component alignment (Senushkin et al., CVPR 2023, "Independent
Component Alignment for Multi-Task Learning", Algorithm 1).

Defaults as torchjd 0.18's ``AlignedMTL()``: uniform preference, ``scale_mode: min``.
"""

from __future__ import annotations

import numpy as np

from peftlab.validators import check_choice
from peftlab.weighting.base import GradientWeighting


class AlignedMTLWeighting(GradientWeighting):
    """Align the task gradients' principal components: with A = V Λ Vᵀ (the Gram matrix, rank r),
    B = √s · V Λ^{-1/2} Vᵀ and α = B·1, so the rows of the combined system Σ_i α_i g_i have equal
    singular values (condition number 1) scaled by √s.

    s is the smallest non-zero eigenvalue (``min``, the paper's choice), the median or the mean
    (``rmse``, the original code's). Eigenvalues below max(λ)·T·ε count as zero; with all zero, α = 1.
    Reported α = T × torchjd's weights (torchjd uses a mean preference 1/T; here 1, the
    equal-weighting scale).

    Args:
        scale_mode: ``min`` | ``median`` | ``rmse``.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    SCALE_MODES = ("min", "median", "rmse")

    def __init__(self, scale_mode: str = "min", mode: str = "params"):
        super().__init__(mode=mode)
        self.scale_mode = check_choice("strategy.weighting.scale_mode", scale_mode, self.SCALE_MODES)

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """B·1 with the balance transformation B."""
        t = len(gram)
        lam, vec = np.linalg.eigh(gram, UPLO="U")
        tol = lam.max() * t * np.finfo(gram.dtype).eps
        rank = int((lam > tol).sum())
        if rank == 0:
            return np.ones(t)
        order = np.argsort(-lam)[:rank]
        lam, vec = lam[order], vec[:, order]
        scale = {"min": lam[-1], "median": np.median(lam), "rmse": lam.mean()}[self.scale_mode]
        balance = np.sqrt(scale) * (vec / np.sqrt(lam)) @ vec.T
        return balance @ np.ones(t)
