"""GradDrop: gradient sign dropout (Chen et al., NeurIPS 2020, "Just Pick a Sign: Optimizing Deep
Multitask Models with Gradient Sign Dropout", arXiv:2010.06808).

Defaults as torchjd 0.18's ``GradDrop()``: f the identity, no leak.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.errors import ConfigError
from peftlab.weighting.base import GradientWeighting


class GradDropWeighting(GradientWeighting):
    """Per coordinate, keep only the task gradients of one sign: with the sign purity
    P = ½(1 + Σ_i g_i / Σ_i |g_i|) and U ~ U(0, 1) drawn per coordinate, keep the positive entries
    where P > U and the negative ones where P < U; d = Σ_i (ℓ_i + (1 − ℓ_i) M_i) ⊙ g_i.

    Works on the raw rows (coordinate-wise: not expressible by a Gram matrix), so it overrides
    :meth:`combine_gradients`. U comes from a generator seeded by (seed, optimizer step): the same
    on every DDP rank and after a resume (in ``params`` mode the rows are already rank-averaged;
    in ``representation`` mode each rank masks its own samples' feature gradients with the same
    draw). On the sum scale, like torchjd. Reported α_i = (d ⊙ mask_i)·g_i / ‖g_i‖², the
    fraction of task i's squared gradient that was kept (1 when all tasks agree in sign).

    Args:
        leak: per-task leak ℓ_i in [0, 1] (null: 0 for every task); 1 keeps task i whole.
        seed: seed of the draws.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, leak: Sequence[float] | None = None, seed: int = 0, mode: str = "params"):
        super().__init__(mode=mode, seed=seed)
        self.leak = None if leak is None else [float(v) for v in leak]
        if self.leak is not None and not all(0.0 <= v <= 1.0 for v in self.leak):
            raise ConfigError("strategy.weighting.leak", f"every leak must be in [0, 1]; got {list(leak)!r}")

    def setup(self, task_names: Sequence[str]) -> None:
        """Check that there is one leak per task."""
        super().setup(task_names)
        if self.leak is not None and len(self.leak) != len(self.task_names):
            raise ConfigError("strategy.weighting.leak", f"expected {len(self.task_names)} values (one per task); got {len(self.leak)}")

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """The sign-dropped sum of the rows ([T, P])."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        leak = torch.zeros(len(rows), dtype=rows.dtype) if self.leak is None else torch.tensor([self.leak[i] for i in idx], dtype=rows.dtype)
        purity = 0.5 * (1 + rows.sum(dim=0) / rows.abs().sum(dim=0))  # NaN where every task is 0: nothing kept, nothing lost
        gen = torch.Generator(device=rows.device).manual_seed(self.seed * 1_000_003 + int(self.steps))
        draw = torch.rand(purity.shape, generator=gen, dtype=rows.dtype, device=rows.device)
        update = torch.zeros_like(rows[0])
        kept = []
        for i in range(len(rows)):
            mask = (purity > draw) * (rows[i] > 0) + (purity < draw) * (rows[i] < 0)
            part = (leak[i] + (1 - leak[i]) * mask) * rows[i]
            update += part
            kept.append(float((part @ rows[i]) / (rows[i] @ rows[i]).clamp(min=1e-30)))
        self.record(kept, idx)
        return update
