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

from peftlab.validators import check_int


def grads_of(optimizer: Optimizer) -> list[torch.Tensor]:
    """The gradients the optimizer is about to use."""
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def drop_grads(optimizer: Optimizer) -> None:
    """Set every gradient the optimizer holds to None: nothing reaches the weights (AdamW skips parameters without one)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


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
    #: True when the policy clips each task's gradient before the tasks are combined, in
    #: :meth:`clip_rows` (the module then takes per-task gradients). Default: False.
    per_task: bool = False
    #: Consecutive non-finite steps the non-finite guard skips before it stops the run
    #: (``strategy.clipping.max_bad_steps``). Default: 5.
    max_bad_steps: int = 5

    def __init__(self, max_bad_steps: int = 5):
        self.max_bad_steps = check_int("strategy.clipping.max_bad_steps", max_bad_steps, minimum=1)

    def clip(self, module: L.LightningModule, optimizer: Optimizer) -> None:
        """Clip the gradients in place."""
        raise NotImplementedError

    def clip_with_norm(self, module: L.LightningModule, optimizer: Optimizer, total_norm: torch.Tensor) -> None:
        """Clip, given the global gradient norm the module has already measured (policies that
        need it override this to skip a second pass over the gradients)."""
        self.clip(module, optimizer)

    def clip_rows(self, rows: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Clip each task's gradient row ([T, P], multiplied by ``scale``) in place (policies with :attr:`per_task`)."""
        raise NotImplementedError(f"{type(self).__name__} does not clip per-task gradients")
