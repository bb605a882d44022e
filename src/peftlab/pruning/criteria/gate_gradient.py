"""Gradient importance of heads and neurons (Michel et al. 2019, "Are Sixteen Heads Really Better than One?").

Put a gate ξ_h = 1 on the output of unit ``h`` (an attention head's context vector, an FFN
unit's activation). The layer reading it (``attention.output.dense``, ``output.dense``) computes
``y = W·(ξ ⊙ o) + b``, so ``∂L/∂ξ_h = Σ_{i, j∈h} W[i, j]·∂L/∂W[i, j]``: the gate gradient is
the reader's weight times its gradient, summed over the unit's input columns. No hooks and no
extra pass: the weight gradients of every training step already hold it, after DDP has averaged
them (so every rank scores alike).

Importance is ``|Σ over optimizer steps of ∂L/∂ξ_h|`` — the first-order change of the training
loss if the unit were removed. (The paper takes ``E_x |∂L(x)/∂ξ_h|`` per example, which needs
per-example gradients: an extra pass.) The summed column products are the criterion's
checkpointed state.
"""

from __future__ import annotations

import torch

from peftlab.errors import ConfigError
from peftlab.pruning.criteria.structured import StructuredL2
from peftlab.pruning.unit_groups import UnitGroup


class GateGradient(StructuredL2):
    """Units ranked by their accumulated gate gradient (``strategy/pruning=heads_gradient``).

    Args:
        unit: ``heads`` (attention heads) or ``neurons`` (FFN units / MLP neurons).

    The layers that read the units (``attention.output.dense`` for heads, ``output.dense`` for
    FFN units) must be selected for pruning and must train (a frozen base under LoRA has no
    weight gradients: use the magnitude criteria there).
    """

    name = "gate_gradient"
    uses_gradients = True

    def __init__(self, unit: str = "heads", n_m=None):
        self.set_n_m(n_m)  # N:M is unstructured-only: anything but null is a one-line error
        if unit not in ("heads", "neurons"):
            raise ConfigError("strategy.pruning.criterion.unit", f"must be heads or neurons; got {unit!r}")
        self.unit = unit
        self.columns: dict[str, torch.Tensor] = {}  # target name -> Σ_steps Σ_rows W ⊙ ∂L/∂W, per input column

    @torch.no_grad()
    def on_gradients(self, targets) -> None:
        """Add this step's ``Σ_rows W ⊙ ∂L/∂W`` of every 2-D target weight with a gradient."""
        for t in targets:
            p = t.tensor
            if t.attr != "weight" or p.dim() != 2 or p.grad is None:
                continue
            col = (p.detach().float() * p.grad.float()).sum(0).cpu()
            acc = self.columns.get(t.name)
            self.columns[t.name] = col if acc is None else acc.add_(col)

    def group_scores(self, group: UnitGroup) -> torch.Tensor:
        """``|∂L/∂ξ|`` per unit, from the reading layers' accumulated column products."""
        total, seen = torch.zeros(group.n_units), False
        for name, _ in group.consumers:
            col = self.columns.get(f"{name}.weight")
            if col is not None:
                total += col.reshape(group.n_units, -1).sum(1)
                seen = True
        if not seen:
            readers = ", ".join(n for n, _ in group.consumers)
            raise ConfigError(
                "strategy.pruning.criterion",
                f"gate_gradient scores {group.name} from the gradients of {readers}, which has none yet "
                "(frozen, e.g. a LoRA base, or outside strategy.pruning.include/scope); include it, let it train, or use the magnitude criterion",
            )
        return total.abs()

    def state_dict(self):
        return {"columns": {k: v.clone() for k, v in self.columns.items()}}

    def load_state_dict(self, state):
        self.columns = {k: v.clone() for k, v in state.get("columns", {}).items()}
