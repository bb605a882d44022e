"""One output head per task."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from peftlab.tasks import TaskSpec


class TaskHeads(nn.Module):
    """A head per task on top of that task's features, made by the task's type.

    ``forward(features)`` takes ``{task: [B, in_dim]}`` and returns ``{task: [B, out_dim]}``
    (class logits, or one value for regression tasks: see :class:`~peftlab.tasks.TaskType`).
    """

    def __init__(self, tasks: Sequence[TaskSpec], in_dim: int):
        super().__init__()
        self.heads = nn.ModuleDict({t.name: t.task_type.make_head(in_dim, t) for t in tasks})

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply each task's head to its features."""
        return {name: head(features[name]) for name, head in self.heads.items()}
