"""The base class every task-weighting method implements."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Weighting(nn.Module):
    """Combines per-task losses into the objective the optimizer minimises.

    A method is one subclass in one file. Loss-based methods override :meth:`combine`.
    :meth:`setup` receives the task names once the data is known (validate config there and
    raise :class:`~peftlab.errors.ConfigError`). :meth:`alpha` reports the effective weight of
    each task, which is logged every step and written to ``metrics.json``.

    ``losses`` holds only the tasks present in the batch (mixed-task batches carry one task).
    """

    def __init__(self):
        super().__init__()
        self.task_names: list[str] = []

    def setup(self, task_names: Sequence[str]) -> None:
        """Learn the task names (called once, before training)."""
        self.task_names = list(task_names)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar objective built from per-task losses."""
        raise NotImplementedError

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`combine`."""
        return self.combine(losses)

    def alpha(self) -> dict[str, float]:
        """Effective weight of each task at this point of training."""
        raise NotImplementedError
