"""Magnitude pruning per layer: each layer loses its smallest |w| until it reaches the target."""

from __future__ import annotations

from peftlab.pruning.criteria.base import Criterion


class Magnitude(Criterion):
    """|w| per layer (every layer ends at the same sparsity)."""

    name = "magnitude"
    scope = "layer"

    def __init__(self, n_m=None):
        self.set_n_m(n_m)  # [N, M]: N:M semi-structured (keep N of every M consecutive input weights per row)

    def scores(self, targets, step):
        return [t.tensor.detach().abs() for t in targets]
