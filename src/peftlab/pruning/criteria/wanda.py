"""Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models").

Score ``S_ij = |W_ij| · ‖X_j‖₂``: the weight's magnitude times the L2 norm of its input feature
over the calibration tokens. Weights compete within their output row (each row loses the same
number), or within each group of M consecutive inputs of a row for N:M. No weight update.
Written by hand: torch.nn.utils.prune has no activation-aware method (masks still go into the
same buffers as every other criterion).
"""

from __future__ import annotations

import torch

from peftlab.pruning.criteria.base import amount_to_k
from peftlab.pruning.criteria.calibrated import CalibratedCriterion
from peftlab.pruning.n_m import n_m_mask


def wanda_scores(weight: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """``|W_ij| · ‖X_j‖₂`` from the per-input sums of squares ``Σ_tokens X_j²``."""
    return weight.detach().abs().float() * sq_norms.sqrt().reshape(1, -1)


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """0/1 mask dropping the ``round(sparsity · in)`` lowest scores of every row."""
    k = amount_to_k(sparsity, scores.shape[1])
    mask = torch.ones_like(scores)
    if k > 0:
        mask.scatter_(1, torch.topk(scores, k, dim=1, largest=False).indices, 0.0)
    return mask


class Wanda(CalibratedCriterion):
    """|W|·‖X‖ compared within each output row (``strategy/pruning=wanda``).

    Args:
        n_m: ``[N, M]`` for N:M semi-structured sparsity (e.g. ``[2, 4]``), or null.
    """

    name = "wanda"

    def new_stats(self, width, device):
        return {"sq": torch.zeros(width, dtype=torch.float32, device=device)}

    def fold(self, stats, x):
        stats["sq"] += (x * x).sum(0)

    def layer_mask(self, weight, stats, tokens, sparsity, pruned):
        scores = wanda_scores(weight, stats["sq"])
        if pruned is not None:
            scores[pruned == 0] = float("-inf")  # already pruned stays pruned
        if self.n_m is not None:
            return n_m_mask(scores, self.n_m, sparsity)
        return row_mask(scores, sparsity)
