"""Random pruning: a baseline. Scores come from a generator seeded by (seed, step) only, so every
DDP rank and a resumed run draw exactly the same masks without sharing any RNG state."""

from __future__ import annotations

import torch

from peftlab.pruning.criteria.base import Criterion


class Random(Criterion):
    """Uniform random scores per layer (``scope="global"`` ranks them across layers)."""

    name = "random"

    def __init__(self, seed: int = 0, scope: str = "layer"):
        self.seed = int(seed)
        self.scope = scope

    def scores(self, targets, step):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return [torch.rand(t.tensor.shape, generator=gen) for t in targets]
