"""ConFIG: conflict-free inverse gradients (Liu, Chu & Thuerey, ICLR 2025, "ConFIG: Towards
Conflict-free Training of Physics Informed Neural Networks", arXiv:2408.11104).

Defaults as torchjd 0.18's ``ConFIG()``: equal preference (all ones).
"""

from __future__ import annotations

import numpy as np

from peftlab.weighting.base import GradientWeighting


class ConFIGWeighting(GradientWeighting):
    """The direction u = Ũ⁺·1 (Ũ the unit task gradients) has the same positive cosine with every
    task; the update is (Σ_i g_i·û) û, û = u/‖u‖.

    Computed from the Gram matrix only: u = Σ_j c_j g_j/‖g_j‖ with c = (D⁻¹AD⁻¹)⁺·1 (D the gradient
    norms; a zero gradient contributes nothing), so nothing of size P is built. On the
    equal-weighting scale already (the sum gradient when all tasks agree), so α is torchjd's
    weights unchanged.

    Args:
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """Coefficients of (Σ_i g_i·û) û on the task gradients."""
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        unit_gram = gram * inv[:, None] * inv[None, :]
        beta = (np.linalg.pinv(unit_gram) @ np.ones(len(gram))) * inv  # u = Σ β_j g_j
        u_norm = max(np.sqrt(max(beta @ gram @ beta, 0.0)), 1e-12)  # torch's F.normalize floor
        length = np.ones(len(gram)) @ gram @ beta / u_norm  # Σ_i g_i·û
        return length * beta / u_norm
