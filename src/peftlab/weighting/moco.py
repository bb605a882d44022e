"""MoCo: multi-objective gradient correction (Fernando et al., ICLR 2023, "Mitigating Gradient Bias in
Multi-objective Learning: A Provably Convergent Approach"); LibMTL's ``MoCo`` (main, 2025).

Defaults as LibMTL's: ``beta: 0.5``, ``beta_sigma: 0.5``, ``gamma: 0.1``, ``gamma_sigma: 0.5``,
``rho: 0.0`` (``MoCo_beta`` … ``MoCo_rho``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting

#: LibMTL's guard in the gradient normalisation.
EPS = 1e-8


class MoCoWeighting(GradientWeighting):
    """Track each task's gradient with a moving estimate y_i and run a projected-gradient MGDA on y.

    As LibMTL, per combination (step s = 1, 2, …): ĝ_i = g_i / (‖g_i‖ + 1e-8) · L_i;
    y ← y − (β / s^σβ)(y − ĝ); λ ← softmax(λ − (γ / s^σγ)(Y Yᵀ + ρI) λ) (λ starts uniform);
    the update is Yᵀλ. Here it is T·Yᵀλ and the reported α is T·λ (the equal-weighting scale;
    LibMTL's λ sums to 1). L_i is the global batch's loss (rank-averaged per task) and the rows
    are rank-averaged, so y and λ are identical on every rank; y (T × shared-parameter floats),
    λ and the step count are buffers, so a resume is exact. ``params`` mode only, as LibMTL (y
    averages gradients over steps: feature gradients of different samples would mean nothing).
    With a subset of tasks present (mixed-task batches) only their y rows move and their λ is
    updated by the softmax over them, keeping their share of the total; T is then their count.

    Args:
        beta: rate β ≥ 0 of the tracking of y.
        beta_sigma: decay σβ ≥ 0 of β with the step.
        gamma: step γ ≥ 0 of λ.
        gamma_sigma: decay σγ ≥ 0 of γ with the step.
        rho: ℓ2 regularisation ρ ≥ 0 of λ's update.
        mode: ``params`` only.
    """

    MODES = ("params",)

    def __init__(self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0, mode: str = "params"):
        super().__init__(mode=mode)
        for name, value in (("beta", beta), ("beta_sigma", beta_sigma), ("gamma", gamma), ("gamma_sigma", gamma_sigma), ("rho", rho)):
            setattr(self, name, check_positive(f"strategy.weighting.{name}", value, allow_zero=True))
        self.register_buffer("tracked", torch.empty(0))
        self.register_buffer("lambd", torch.empty(0, dtype=torch.float64))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._losses = torch.empty(0, dtype=torch.float64)

    def setup(self, task_names: Sequence[str]) -> None:
        """λ uniform (1/T)."""
        super().setup(task_names)
        self.lambd = torch.full((len(self.task_names),), 1.0 / len(self.task_names), dtype=torch.float64)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Keep the global batch's losses (they scale the normalised gradients); the plain sum for logging."""
        self._losses, _ = self._global_losses(losses)
        return super().combine(losses)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """T·Yᵀλ after one step of y and of λ."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        if self.tracked.shape != (len(self.task_names), rows.shape[1]):
            self.tracked = rows.new_zeros(len(self.task_names), rows.shape[1])
        self.updates += 1
        step = float(self.updates)
        scaled = rows / (rows.norm(dim=1, keepdim=True) + EPS) * self._losses[idx].to(rows).unsqueeze(1)
        y = self.tracked[idx].to(rows)
        y = y - (self.beta / step**self.beta_sigma) * (y - scaled)
        self.tracked[idx] = y.to(self.tracked)
        lam = self.lambd.cpu()[idx]
        share = float(lam.sum())
        gram = (y @ y.T).double().cpu() + self.rho * torch.eye(len(idx), dtype=torch.float64)
        lam = torch.softmax(lam / share - (self.gamma / step**self.gamma_sigma) * gram @ (lam / share), dim=0)
        self.lambd[idx] = (lam * share).to(self.lambd)
        coeffs = self.record((len(idx) * lam).numpy(), idx)
        return coeffs.to(rows) @ y

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Size the tracked gradients like the checkpoint's before loading them (their width is the model's)."""
        saved = state_dict.get(prefix + "tracked")
        if saved is not None:
            self.tracked = torch.empty_like(saved, device=self.tracked.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
