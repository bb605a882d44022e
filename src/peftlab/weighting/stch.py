"""STCH: smooth Tchebycheff scalarisation (Lin et al., ICML 2024, "Smooth Tchebycheff Scalarization
for Multi-Objective Optimization", arXiv:2402.19078); LibMTL's ``STCH`` (main, 2025).

Defaults as LibMTL's: smoothing ``mu: 1.0``, ``warmup_epochs: 4`` (``STCH_mu``, ``STCH_warmup_epoch``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_int, check_positive
from peftlab.weighting.base import Weighting

#: LibMTL's guard inside every logarithm.
EPS = 1e-20


class STCHWeighting(Weighting):
    """Minimise T·μ·log Σ_i exp(log(L_i / z_i) / μ), a smooth maximum of the log losses relative to
    a nadir point z, after a warm-up on Σ_i log L_i.

    As LibMTL: epochs 0 … W−1 (W = ``warmup_epochs``) minimise Σ_i log(L_i); epoch W does the
    same and averages each task's loss over its steps; that mean is the nadir z, fixed from epoch
    W + 1 on, when the objective becomes the smooth Tchebycheff one. μ → 0 approaches
    max_i log(L_i/z_i) (the Tchebycheff scalarisation); large μ approaches the log-loss mean.

    The gradient is Σ_i α_i ∇L_i with α_i = 1/L_i in warm-up and α_i = T·softmax(ℓ/μ)_i / (z_i·(L_i/z_i))
    after (ℓ_i = log(L_i/z_i)), both computed from the losses averaged over the DDP ranks (per task,
    over the ranks whose batch holds it); the objective handed to the optimizer is Σ_i α_i L_i with
    α detached, so the averaged gradient is the global batch's STCH gradient (its value is that
    surrogate's, not the log-space one). Only the tasks present enter (T = their count). α is
    ∂objective/∂L_i itself (not rescaled: a task with a small loss gets a large weight). The epoch
    count, the nadir sums and z are buffers (identical on every rank), so a resume is exact.

    Args:
        mu: smoothing μ > 0.
        warmup_epochs: W ≥ 0; the nadir is the mean loss of epoch W.
    """

    def __init__(self, mu: float = 1.0, warmup_epochs: int = 4):
        super().__init__()
        self.mu = check_positive("strategy.weighting.mu", mu)
        self.warmup_epochs = check_int("strategy.weighting.warmup_epochs", warmup_epochs, minimum=0)
        for name in ("nadir_sums", "nadir", "last_alpha"):
            self.register_buffer(name, torch.empty(0, dtype=torch.float64))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str]) -> None:
        """No nadir yet (rows of ``nadir_sums``: loss sums, step counts); α = 1 before the first step."""
        super().setup(task_names)
        t = len(self.task_names)
        self.nadir_sums = torch.zeros(2, t, dtype=torch.float64)
        self.nadir = torch.full((t,), float("nan"), dtype=torch.float64)
        self.last_alpha = torch.ones(t, dtype=torch.float64)

    def weights(self, mean: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """α (task order, 0 for absent tasks) from the global-batch losses ``mean``; accumulates the nadir in epoch W."""
        epoch = int(self.epochs)
        if epoch <= self.warmup_epochs:
            if epoch == self.warmup_epochs:
                self.nadir_sums[0] += torch.where(present, mean, torch.zeros_like(mean)).to(self.nadir_sums)
                self.nadir_sums[1] += present.to(self.nadir_sums)
            return torch.where(present, 1.0 / (mean + EPS), torch.zeros_like(mean))
        nadir = self.nadir.to(mean)
        rel = mean[present] / nadir[present]
        soft = torch.softmax(torch.log(rel + EPS) / self.mu, dim=0)
        alpha = torch.zeros_like(mean)
        alpha[present] = int(present.sum()) * soft / (nadir[present] * (rel + EPS))
        return alpha

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ_i α_i L_i with α (detached) from the rank-averaged losses."""
        mean, present = self._global_losses(losses)
        alpha = self.weights(mean, present)
        self.last_alpha[present.to(self.last_alpha.device)] = alpha[present].to(self.last_alpha)
        idx = [self.task_names.index(n) for n in losses]
        values = torch.stack(list(losses.values()))
        return (alpha[idx].to(values) * values).sum()

    def on_epoch_end(self) -> None:
        """Count the epoch; at the end of epoch W fix the nadir (1 for a task epoch W never saw)."""
        self.epochs += 1
        if int(self.epochs) == self.warmup_epochs + 1:
            sums, counts = self.nadir_sums
            self.nadir = torch.where(counts > 0, sums / counts.clamp(min=1), torch.ones_like(sums))

    def alpha(self) -> dict[str, float]:
        """The weights of the last combination."""
        return {name: float(a) for name, a in zip(self.task_names, self.last_alpha)}
