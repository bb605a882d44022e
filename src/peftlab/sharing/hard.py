"""Hard parameter sharing: one backbone serves every task."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


class SharedBody(nn.Module):
    """One backbone; every task reads the same features.

    ``forward(x)`` returns ``{task: features}`` with the same tensor for each task, and keeps
    the last features as ``self.representation`` so gradient-based weighting methods can work
    on the shared representation.
    """

    def __init__(self, backbone: nn.Module, task_names: Sequence[str]):
        super().__init__()
        self.backbone = backbone
        self.task_names = list(task_names)
        self.out_dim = backbone.out_dim

    def forward(self, x) -> dict[str, torch.Tensor]:
        """Shared features for every task."""
        h = self.backbone(x)
        return {name: h for name in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss depends on."""
        return [p for p in self.backbone.parameters() if p.requires_grad]


class HardSharing:
    """Builds a :class:`SharedBody`: the multi-task default (``strategy=share``)."""

    name = "hard"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> SharedBody:
        """One backbone for all tasks."""
        return SharedBody(make_backbone(), task_names)
