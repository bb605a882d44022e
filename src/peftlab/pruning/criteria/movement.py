"""Movement pruning (Sanh et al. 2020): keep weights moving away from zero.

The score of each weight accumulates ``-W * dL/dW`` at every optimizer step; weights whose
gradient pushes them toward zero get low scores and are pruned first. Gradients are read
before the optimizer step, after DDP has averaged them, so every rank accumulates the same
scores. Scores are part of the callback's checkpointed state.
"""

from __future__ import annotations

import torch

from peftlab.pruning.criteria.base import Criterion


class Movement(Criterion):
    """Accumulated ``-W·∂L/∂W`` per weight (``scope``: layer or global)."""

    name = "movement"
    uses_gradients = True

    def __init__(self, scope: str = "layer", n_m=None):
        self.scope = scope
        self.accumulated: list[torch.Tensor] | None = None
        self.set_n_m(n_m)  # [N, M]: N:M semi-structured (per layer only)

    @torch.no_grad()
    def on_gradients(self, targets):
        if self.accumulated is None:
            self.accumulated = [torch.zeros_like(t.tensor, dtype=torch.float32) for t in targets]
        for acc, t in zip(self.accumulated, targets):
            p = t.tensor
            if p.grad is not None:
                acc.sub_(p.detach().float() * p.grad.float())

    def scores(self, targets, step):
        if self.accumulated is None:
            return [torch.zeros_like(t.tensor, dtype=torch.float32) for t in targets]
        return self.accumulated

    def state_dict(self):
        return {"accumulated": None if self.accumulated is None else [a.cpu().clone() for a in self.accumulated]}

    def load_state_dict(self, state):
        acc = state.get("accumulated")
        self.accumulated = None if acc is None else [a.clone() for a in acc]
