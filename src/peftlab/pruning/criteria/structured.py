"""Structured criteria: whole neurons (rows of linear layers + the next layer's columns) or
attention heads (q/k/v rows + output columns), ranked by L2 norm within each layer."""

from __future__ import annotations

import torch

from peftlab.errors import ConfigError
from peftlab.pruning.criteria.base import Criterion, amount_to_k, lowest_k_mask
from peftlab.pruning.unit_groups import UnitGroup


class StructuredL2(Criterion):
    """Base of :class:`Neurons` and :class:`Heads`: per group, drop the units with the smallest L2 norm."""

    structured = True
    unit = "neurons"

    def __init__(self, n_m=None):
        self.set_n_m(n_m)  # N:M is unstructured-only: anything but null is a one-line error

    def unit_keep(self, groups: list[UnitGroup], sparsity: float, current: list[torch.Tensor]) -> list[torch.Tensor]:
        """0/1 keep-vectors (one per group) with ``round(sparsity * n_units)`` units dropped."""
        keeps = []
        for group, cur in zip(groups, current):
            scores = self.group_scores(group)
            scores[cur == 0] = float("-inf")  # pruned units stay pruned
            keeps.append(lowest_k_mask(scores, units_to_drop(group, sparsity)))
        return keeps

    def group_scores(self, group: UnitGroup) -> torch.Tensor:
        """Importance of each unit of ``group`` (higher = kept longer): the L2 norm of its weights."""
        return group.unit_scores()


def units_to_drop(group: UnitGroup, sparsity: float) -> int:
    """``round(sparsity * n_units)``; an attention layer must keep at least one head (one-line error otherwise)."""
    k = amount_to_k(sparsity, group.n_units)
    if group.kind == "heads" and k >= group.n_units:
        most = (group.n_units - 1) / group.n_units
        raise ConfigError(
            "strategy.pruning.final_sparsity",
            f"{sparsity:g} would remove all {group.n_units} heads of {group.name} (round({sparsity:g} x {group.n_units}) = {k}); a layer keeps at least one head: use at most {most:.4g}",
        )
    return k


class Neurons(StructuredL2):
    """Output units of linear layers (``strategy/pruning=neurons``)."""

    name = "neurons"
    unit = "neurons"


class Heads(StructuredL2):
    """Attention heads of BERT-style self-attention (``strategy/pruning=heads``)."""

    name = "heads"
    unit = "heads"
