"""One backbone read by every task; the policies differ only in what of it trains."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from peftlab.sharing.base import PolicyBody, SharingPolicy


class SharedBody(PolicyBody):
    """One backbone; ``forward(...)`` returns ``{task: features}`` with the same tensor for each task.

    Args:
        backbone: the backbone (an ``out_dim`` attribute gives the feature width).
        task_names: the tasks, in order.
        trainable: the backbone parameters that train (the policy's choice).
    """

    def __init__(self, backbone: nn.Module, task_names: Sequence[str], trainable: Iterable[nn.Parameter]):
        super().__init__()
        self.backbone = backbone
        self.task_names = list(task_names)
        self.out_dim = backbone.out_dim
        self.record_trainable(trainable)

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """Shared features for every task."""
        h = self.backbone(*args, **kwargs)
        return {name: h for name in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every trainable backbone parameter is shared by all tasks."""
        return self.trainable_parameters()

    def base_model(self) -> dict[str, Any] | None:
        """The pretrained weights' location, when the backbone was loaded from one (``model=hf``)."""
        name = getattr(self.backbone, "name_or_path", None)
        return {"name_or_path": name} if name else None


class FullSharing(SharingPolicy):
    """Every backbone parameter trains (full fine-tuning; ``strategy/sharing=full``, formerly ``hard``)."""

    name = "full"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> SharedBody:
        """One backbone for all tasks, all of it trainable."""
        backbone = make_backbone()
        return SharedBody(backbone, task_names, backbone.parameters())


HardSharing = FullSharing  # the name used before there were other shared-backbone policies


class FrozenBackbone(SharingPolicy):
    """The backbone is frozen; only the task heads train (linear probing; ``strategy/sharing=frozen``)."""

    name = "frozen"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> SharedBody:
        """One frozen backbone for all tasks."""
        return SharedBody(make_backbone(), task_names, [])


class BitFit(SharingPolicy):
    """Only the backbone's bias terms (and the heads) train (Ben Zaken et al. 2022; ``strategy/sharing=bitfit``)."""

    name = "bitfit"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> SharedBody:
        """One backbone whose parameters named ``*bias`` train."""
        backbone = make_backbone()
        biases = [p for n, p in backbone.named_parameters() if n.split(".")[-1] == "bias"]
        return SharedBody(backbone, task_names, biases)
