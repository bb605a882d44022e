"""Trimmed mean: coordinate-wise robust aggregation (Yin et al., ICML 2018, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates").

Default ``trim_number: 1`` (torchjd 0.18's ``TrimmedMean(trim_number)`` has none; 1 with three
tasks is the coordinate-wise median).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_int
from peftlab.weighting.base import GradientWeighting


class TrimmedMeanWeighting(GradientWeighting):
    """In every coordinate, drop the k largest and k smallest task gradients' entries
    (k = ``trim_number``) and average the T − 2k others; the update is T × that mean (the
    equal-weighting sum scale: k = 0 is the plain sum).

    Coordinate-wise, so it works on the raw rows (:meth:`combine_gradients`), like GradDrop: in
    ``representation`` mode each rank trims its own samples' feature gradients. An entry's rank in
    its column breaks ties by task order; the kept entries' sum does not depend on how ties
    break. Needs T ≥ 2k + 1 tasks (checked at setup); a batch with fewer tasks present uses
    k = (T_present − 1) // 2. Reported α_i = T/(T − 2k) × the fraction of task i's squared gradient
    that was kept (T/(T − 2k) × 1 when nothing of it was trimmed).

    Args:
        trim_number: k ≥ 0 entries trimmed at each end of every coordinate.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, trim_number: int = 1, mode: str = "params"):
        super().__init__(mode=mode)
        self.trim_number = check_int("strategy.weighting.trim_number", trim_number, minimum=0)

    def setup(self, task_names: Sequence[str]) -> None:
        """Check that 2k + 1 tasks exist."""
        super().setup(task_names)
        if len(self.task_names) < 2 * self.trim_number + 1:
            raise ConfigError("strategy.weighting.trim_number", f"needs at least 2 * trim_number + 1 tasks; got {len(self.task_names)} task(s) for trim_number={self.trim_number}")

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """T/(T − 2k) × the sum of the entries ranked k … T − k − 1 in their coordinate."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        t = len(rows)
        k = min(self.trim_number, (t - 1) // 2)
        scale = t / (t - 2 * k)
        update = torch.zeros_like(rows[0])
        kept = []
        for i in range(t):
            rank = sum((rows[j] < rows[i]).to(torch.int32) + ((rows[j] == rows[i]) & (j < i)).to(torch.int32) for j in range(t) if j != i)
            part = rows[i] * ((rank >= k) & (rank < t - k)) if t > 1 else rows[i]
            update += part
            kept.append(scale * float((part @ rows[i]) / (rows[i] @ rows[i]).clamp(min=1e-30)))
        self.record(kept, idx)
        return scale * update
