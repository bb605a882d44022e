"""Structured criteria: whole neurons (rows of linear layers + the next layer's columns) or
attention heads (q/k/v rows + output columns), ranked by L2 norm within each layer."""

from __future__ import annotations

import torch

from peftlab.pruning.criteria.base import Criterion, amount_to_k, lowest_k_mask
from peftlab.pruning.structure import UnitGroup


class StructuredL2(Criterion):
    """Base of :class:`Neurons` and :class:`Heads`: per group, drop the units with the smallest L2 norm."""

    structured = True
    unit = "neurons"

    def unit_keep(self, groups: list[UnitGroup], sparsity: float, current: list[torch.Tensor]) -> list[torch.Tensor]:
        """0/1 keep-vectors (one per group) with ``round(sparsity * n_units)`` units dropped."""
        keeps = []
        for group, cur in zip(groups, current):
            scores = group.unit_scores()
            scores[cur == 0] = float("-inf")  # pruned units stay pruned
            keeps.append(lowest_k_mask(scores, amount_to_k(sparsity, group.n_units)))
        return keeps


class Neurons(StructuredL2):
    """Output units of linear layers (``strategy/pruning=neurons``)."""

    name = "neurons"
    unit = "neurons"


class Heads(StructuredL2):
    """Attention heads of BERT-style self-attention (``strategy/pruning=heads``)."""

    name = "heads"
    unit = "heads"
