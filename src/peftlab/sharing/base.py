"""What every sharing policy builds: a body that maps inputs to ``{task: features}`` and says what trains.

A policy (``strategy/sharing``) is the one place that decides which backbone parameters train:
it sets ``requires_grad``, inserts adapters and routes tasks when it builds the body, and the
body records that decision (:meth:`PolicyBody.trainable_parameters`). The optimizer, the
per-task-gradient step, parameter counts and adapter-only checkpoints all read this record,
never ``requires_grad`` at some later moment (peft's ``set_adapter``, for one, flips it).

The body also answers what the rest of peftlab needs to know about its adapters (pruning,
export, evaluation and parameter counts ask it, instead of reading parameter names):
:meth:`PolicyBody.adapter_layers` (each adapter layer and the base layer it wraps),
:meth:`PolicyBody.adapter_modules` (the adapters' own modules, never prunable),
:meth:`PolicyBody.base_weights` (the base linear/convolution weights) and
:meth:`PolicyBody.merge_adapters`. Bodies without adapters keep the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

BASE_WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)  # what counts as a base weight (and is prunable by default)


@dataclass(frozen=True)
class AdapterLayer:
    """One adapter layer of a body and the base layer it wraps (its output is the base's, adapted).

    ``name``: the adapter layer's path in the body; ``base_attr``: the base layer's path inside
    the adapter layer (so the base's path in the body is ``f"{name}.{base_attr}"``).
    """

    name: str
    layer: nn.Module
    base: nn.Module
    base_attr: str


class PolicyBody(nn.Module):
    """A body whose trainable parameters were fixed by its sharing policy when it was built."""

    out_dim: int
    routes_by_task = False  # True: forward takes the batch's task_mask (see peftlab.batch.call_body)

    def record_trainable(self, trainable: Iterable[nn.Parameter]) -> None:
        """Remember which parameters train and make ``requires_grad`` say the same."""
        keep = {id(p) for p in trainable}
        self._trainable_ids = keep
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the policy trains, in module order (identity survives pruning's reparametrisation)."""
        return [p for p in self.parameters() if id(p) in self._trainable_ids]

    def frozen_parameter_names(self) -> list[str]:
        """Names (relative to this body) of the parameters the policy keeps frozen."""
        return [n for n, p in self.named_parameters() if id(p) not in self._trainable_ids]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters every task's loss depends on (what gradient weighting combines)."""
        raise NotImplementedError

    def base_model(self) -> dict[str, Any] | None:
        """Where the frozen weights can be reloaded from (``{"name_or_path": ...}``), or None if nowhere."""
        return None

    # ------------------------------------------------------------ adapters
    def adapter_layers(self) -> list[AdapterLayer]:
        """Every adapter layer with the base layer it wraps (none: a body without adapters)."""
        return []

    def adapter_modules(self) -> list[nn.Module]:
        """The adapters' own modules (e.g. LoRA's A and B): they train, they are never base weights."""
        return []

    @property
    def has_adapters(self) -> bool:
        """Whether adapter layers wrap some of the body's base layers."""
        return bool(self.adapter_layers())

    def base_weights(self) -> list[tuple[str, torch.Tensor]]:
        """``(name in the body, weight)`` of every linear/convolution layer that is not an adapter's own."""
        return base_weights(self, self.adapter_modules())

    def merge_adapters(self) -> int:
        """Merge every adapter into the weight of the base layer it wraps and put the base layer in
        its place; returns how many layers were merged (0 without adapters)."""
        return 0


def base_weights(root: nn.Module, adapter_modules: Iterable[nn.Module] = ()) -> list[tuple[str, torch.Tensor]]:
    """``(name, weight)`` of every linear/convolution layer under ``root`` except ``adapter_modules``."""
    skip = {id(m) for m in adapter_modules}
    return [(f"{name}.weight" if name else "weight", module.weight) for name, module in root.named_modules() if isinstance(module, BASE_WEIGHT_TYPES) and id(module) not in skip]


class SharingPolicy:
    """Base of ``strategy/sharing`` options: ``build(make_backbone, task_names) -> PolicyBody``."""

    name = "base"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> PolicyBody:
        """Build the body and record what trains."""
        raise NotImplementedError
