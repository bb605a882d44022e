"""No sharing: one backbone per task, the single-task baseline."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from peftlab.sharing.base import PolicyBody, SharingPolicy


class SeparateBodies(PolicyBody):
    """An independent, fully trainable backbone for each task (``strategy=separate``)."""

    def __init__(self, backbones: dict[str, nn.Module]):
        super().__init__()
        self.backbones = nn.ModuleDict(backbones)
        self.out_dim = next(iter(backbones.values())).out_dim
        self.record_trainable(self.backbones.parameters())

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """Each task's features from its own backbone."""
        return {name: backbone(*args, **kwargs) for name, backbone in self.backbones.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Nothing is shared."""
        return []


class SeparateBackbones(SharingPolicy):
    """Builds :class:`SeparateBodies`, each backbone built afresh (pretrained ones each loaded again)."""

    name = "separate"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> SeparateBodies:
        """One backbone per task."""
        return SeparateBodies({name: make_backbone() for name in task_names})
