"""Gradient clipping policies and the non-finite-step guard's threshold.

The module calls :meth:`Clipping.clip` once per optimizer step, after gradients are complete
(accumulated, averaged across DDP ranks, combined by the weighting method) and unscaled
(16-mixed), right before the optimizer step — under automatic optimisation from
``configure_gradient_clipping``, under manual optimisation from ``on_before_optimizer_step``
(Lightning disables its own clipping there). Thresholds are therefore in true gradient units.
"""

from __future__ import annotations

from typing import Iterable

import lightning as L
import torch
from torch.optim import Optimizer

from peftlab.errors import ConfigError


def grads_of(optimizer: Optimizer) -> list[torch.Tensor]:
    """The gradients the optimizer is about to use."""
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def global_norm(grads: Iterable[torch.Tensor]) -> torch.Tensor:
    """L2 norm of all gradients together (float32; inf/nan if any entry is)."""
    grads = list(grads)
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)  # one fused pass, what clip_grad_norm_ uses internally
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


class Clipping:
    """Clips the gradients of ``module`` before the optimizer step.

    Args:
        max_bad_steps: the non-finite guard stops the run after this many consecutive steps
            whose loss or gradient was NaN/Inf (each such step is skipped: no weight changes).
    """

    name = "base"
    #: True when the policy clips each task's gradient before combining (needs per-task gradients).
    per_task = False

    def __init__(self, max_bad_steps: int = 5):
        if not isinstance(max_bad_steps, int) or isinstance(max_bad_steps, bool) or max_bad_steps < 1:
            raise ConfigError("strategy.clipping.max_bad_steps", f"must be an integer >= 1; got {max_bad_steps!r}")
        self.max_bad_steps = max_bad_steps

    def clip(self, module: L.LightningModule, optimizer: Optimizer) -> None:
        """Clip the gradients in place."""
        raise NotImplementedError

    def clip_with_norm(self, module: L.LightningModule, optimizer: Optimizer, total_norm: torch.Tensor) -> None:
        """Clip, given the global gradient norm the module has already measured (policies that
        need it override this to skip a second pass over the gradients)."""
        self.clip(module, optimizer)


def positive(key: str, value) -> float:
    """``value`` as float, or a ConfigError naming ``key`` unless it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ConfigError(key, f"must be a finite number > 0; got {value!r}")
    return float(value)
