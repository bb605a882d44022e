"""Random Loss Weighting (Lin et al. 2022)."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.weighting.base import Weighting


class RLWWeighting(Weighting):
    """α = T·softmax(z), z ~ N(0, I) drawn afresh for every optimizer step.

    The draw comes from a generator keyed by (seed, optimizer step), so all DDP ranks and all
    micro-batches of one accumulation window use the same α, and a resumed run draws the same
    sequence.

    Args:
        seed: seed of the draws.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._cache: tuple[int, torch.Tensor] | None = None

    def setup(self, task_names: Sequence[str]) -> None:
        """Remember task order."""
        super().setup(task_names)
        self._index = {n: i for i, n in enumerate(self.task_names)}

    def weights(self) -> torch.Tensor:
        """α for the current optimizer step."""
        step = int(self.steps)
        if self._cache is None or self._cache[0] != step:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            z = torch.randn(len(self.task_names), generator=gen)
            self._cache = (step, len(self.task_names) * torch.softmax(z, dim=0))
        return self._cache[1]

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ α_i L_i with this step's random α."""
        w = self.weights()
        idx = [self._index[n] for n in losses]
        return (w[idx].to(next(iter(losses.values())).device) * torch.stack(list(losses.values()))).sum()

    def on_optimizer_step(self) -> None:
        """Next step, next draw."""
        self.steps += 1

    def alpha(self) -> dict[str, float]:
        """This step's α."""
        return {n: float(w) for n, w in zip(self.task_names, self.weights())}
