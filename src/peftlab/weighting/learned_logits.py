"""Task logits that a weighting method learns with its own small Adam (FAMO, GradNorm)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TaskLogits(nn.Module):
    """``T`` logits with their own ``torch.optim.Adam``; the model's optimizer never sees them.

    The logits are an ``nn.Parameter`` with ``requires_grad=False``: they move with the module
    and are saved in ``state_dict``, yet ``configure_optimizers`` (trainable parameters only) and
    DDP (which syncs parameters that require grad) leave them alone. Their gradient is set by
    hand from values that are already identical on every rank; the Adam state is saved through
    ``get_extra_state``.
    """

    def __init__(self, num_tasks: int, lr: float, weight_decay: float = 0.0):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(num_tasks), requires_grad=False)
        self.lr, self.weight_decay = lr, weight_decay
        self._opt: torch.optim.Optimizer | None = None
        self._pending_state: dict | None = None

    def optimizer(self) -> torch.optim.Optimizer:
        """The Adam over the logits (built lazily so that it follows device moves)."""
        if self._opt is None:
            self._opt = torch.optim.Adam([self.value], lr=self.lr, weight_decay=self.weight_decay)
            if self._pending_state is not None:
                self._opt.load_state_dict(self._pending_state)
                self._pending_state = None
        return self._opt

    def add_grad(self, grad: torch.Tensor) -> None:
        """Accumulate a gradient for the next :meth:`step`."""
        grad = grad.to(self.value)
        self.value.grad = grad if self.value.grad is None else self.value.grad + grad

    def step(self) -> None:
        """One Adam step with the accumulated gradient (skipped if there is none or it is not finite)."""
        grad = self.value.grad
        if grad is not None and bool(torch.isfinite(grad).all()):
            self.optimizer().step()
        self.value.grad = None

    def get_extra_state(self) -> Any:
        """Adam's state, so that a resumed run continues identically."""
        return {"adam": self._opt.state_dict() if self._opt is not None else self._pending_state}

    def set_extra_state(self, state: Any) -> None:
        """Restore Adam's state (applied when the optimizer is next built)."""
        self._opt = None
        self._pending_state = (state or {}).get("adam")
