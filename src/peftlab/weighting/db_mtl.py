"""DB-MTL: dual-balancing multi-task learning (Lin et al. 2023, "Dual-Balancing for Multi-Task
Learning", arXiv:2308.12029); LibMTL's ``DB_MTL`` (main, 2025).

Defaults as LibMTL's: ``beta: 0.9``, ``beta_sigma: 0.0`` (``DB_beta``, ``DB_beta_sigma``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting

#: LibMTL's guards: inside the log of the losses and in the norm ratio.
EPS = 1e-8


class DBMTLWeighting(GradientWeighting):
    """Balance the losses' scale (train on log L_i) and the gradients' magnitude (scale every task's
    gradient up to the largest norm).

    As LibMTL, per combination (step s = 1, 2, …): the gradients of log(L_i + 1e-8), h_i = g_i / (L_i + 1e-8),
    enter an exponential moving average m_i ← h_i + (β / s^σ)(m_i − h_i) (m starts at 0); the update
    is Σ_i α_i m_i with α_i = max_j ‖m_j‖ / (‖m_i‖ + 1e-8). So the loss-space half of the method
    is the log transform (a per-task 1/L_i) and the gradient half needs the per-task rows: it is a
    gradient method (T backward passes) in ``params`` mode only, as LibMTL (an average of feature
    gradients of different samples would mean nothing). Reported α is LibMTL's (max norm / norm;
    the update is on the sum scale, its norm T × the largest task's).

    L_i is the global batch's loss (averaged over the DDP ranks, per task) and the rows are already
    rank-averaged, so m is identical on every rank. m (T × shared-parameter floats, the rows'
    dtype) and the step count are buffers, so a resume is exact. Only the present tasks' rows are
    updated and combined (mixed-task batches). Under ``16-mixed`` the rows carry the grad scaler's
    scale, which m then mixes when the scale changes: prefer ``bf16-mixed``.

    Args:
        beta: EMA rate β ≥ 0 (β = 0: no averaging).
        beta_sigma: decay σ ≥ 0 of the rate with the step (β / s^σ).
        mode: ``params`` only.
    """

    MODES = ("params",)

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0, mode: str = "params"):
        super().__init__(mode=mode)
        self.beta = check_positive("strategy.weighting.beta", beta, allow_zero=True)
        self.beta_sigma = check_positive("strategy.weighting.beta_sigma", beta_sigma, allow_zero=True)
        self.register_buffer("grad_buffer", torch.empty(0))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._losses = torch.empty(0, dtype=torch.float64)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Keep the global batch's losses (for the log transform); the plain sum for logging."""
        self._losses, _ = self._global_losses(losses)
        return super().combine(losses)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """Σ_i α_i m_i after folding this step's log-loss gradients into m."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        if self.grad_buffer.shape != (len(self.task_names), rows.shape[1]):
            self.grad_buffer = rows.new_zeros(len(self.task_names), rows.shape[1])
        self.updates += 1
        log_rows = rows / (self._losses[idx].to(rows) + EPS).unsqueeze(1)
        rate = self.beta / float(self.updates) ** self.beta_sigma
        self.grad_buffer[idx] = log_rows + rate * (self.grad_buffer[idx].to(rows) - log_rows)
        ema = self.grad_buffer[idx].to(rows)
        norms = ema.norm(dim=1)
        alpha = norms.max() / (norms + EPS)
        self.record(alpha.double().cpu().numpy(), idx)
        return alpha @ ema

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Size the moving average like the checkpoint's before loading it (its width is the model's)."""
        saved = state_dict.get(prefix + "grad_buffer")
        if saved is not None:
            self.grad_buffer = torch.empty_like(saved, device=self.grad_buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
