"""PCGrad: projecting conflicting gradients (Yu et al. 2020)."""

from __future__ import annotations

import numpy as np

from peftlab.weighting.base import GradientWeighting


class PCGradWeighting(GradientWeighting):
    """For each task i, in a random task order: if g_i'·g_j < 0, g_i' ← g_i' − (g_i'·g_j/‖g_j‖²) g_j.

    The update is Σ_i g_i'. Every projected g_i' is a linear combination of the original
    gradients, so the method is run on coefficients C (g_i' = Σ_k C_ik g_k) using only the Gram
    matrix A: g_i'·g_j = (C A)_ij. This needs no T×P working copies of projected gradients, and
    under DDP only the averaged gradients (same on every rank) enter. The random order comes
    from a generator keyed by (seed, optimizer step), identical on every rank.
    """

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """α = column sums of the projection coefficients."""
        t = len(gram)
        coeffs = np.eye(t)
        order = self.generator().permutation(t)
        for i in range(t):
            for j in order:
                if j == i or gram[j, j] <= 0:
                    continue
                dot = coeffs[i] @ gram[:, j]
                if dot < 0:
                    coeffs[i, j] -= dot / gram[j, j]
        return coeffs.sum(axis=0)
