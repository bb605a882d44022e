"""What every sharing policy builds: a body that maps inputs to ``{task: features}`` and says what trains.

A policy (``strategy/sharing``) is the one place that decides which backbone parameters train:
it sets ``requires_grad``, inserts adapters and routes tasks when it builds the body, and the
body records that decision (:meth:`PolicyBody.trainable_parameters`). The optimizer, the
per-task-gradient step, parameter counts and adapter-only checkpoints all read this record,
never ``requires_grad`` at some later moment (peft's ``set_adapter``, for one, flips it).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from torch import nn


class PolicyBody(nn.Module):
    """A body whose trainable parameters were fixed by its sharing policy when it was built."""

    out_dim: int

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


class SharingPolicy:
    """Base of ``strategy/sharing`` options: ``build(make_backbone, task_names) -> PolicyBody``."""

    name = "base"

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> PolicyBody:
        """Build the body and record what trains."""
        raise NotImplementedError
