"""Clip each task's gradient before the tasks are combined."""

from __future__ import annotations

import torch

from peftlab.clipping.base import Clipping
from peftlab.validators import check_positive


class PerTaskClipping(Clipping):
    """Each task's gradient (shared + its own head) is scaled to L2 norm ≤ ``max_norm``, then the
    weighting method combines them. One task with exploding gradients can no longer swamp the
    others. Needs per-task gradients, so the module trains with its per-task-gradient (manual)
    path even for loss-based weightings; the weighting's α then multiplies the clipped
    gradients. Norms are taken after DDP averaging, so every rank clips identically.

    Args:
        max_norm: largest allowed norm of one task's gradient.
    """

    name = "per_task"
    per_task = True

    def __init__(self, max_norm: float = 1.0, max_bad_steps: int = 5):
        super().__init__(max_bad_steps)
        self.max_norm = check_positive("strategy.clipping.max_norm", max_norm)

    def clip_rows(self, rows: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Scale each row (one task's flat gradient, multiplied by ``scale``) to norm ≤ max_norm, in place."""
        norms = rows.float().norm(dim=1, keepdim=True) / scale
        factor = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)
        return rows.mul_(factor.to(rows.dtype))

    def clip(self, module, optimizer) -> None:
        """Nothing left to do at the optimizer step: rows were clipped before combining."""
