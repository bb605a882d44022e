"""GradVac: gradient vaccine (Wang et al., ICLR 2021, "Gradient Vaccine: Investigating and
Improving Multi-task Optimization in Massively Multilingual Models", arXiv:2010.05874).

Defaults as LibMTL's and torchjd 0.18's ``GradVac()``: EMA rate ``beta: 0.5``, ``eps: 1e-8``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_positive
from peftlab.weighting.base import GradientWeighting


class GradVacWeighting(GradientWeighting):
    """Like PCGrad, but each pair (i, j) is pulled towards a target cosine φ̂_ij (an EMA of the
    pair's observed cosines) rather than to orthogonality: when cos(g_i', g_j) < φ̂_ij,
    g_i' ← g_i' + w g_j with w = ‖g_i'‖(φ̂√(1−φ²) − φ√(1−φ̂²)) / (‖g_j‖√(1−φ̂²)).

    Run on coefficients of the original gradients using the Gram matrix only (as torchjd does);
    the update is Σ_i g_i' (the sum scale, so α is torchjd's weights unchanged). The order of the
    j's for each i is a random permutation from a ``torch.Generator`` seeded by (seed, optimizer
    step), identical on every DDP rank and after a resume. The targets φ̂ (T×T) are a buffer, so
    they are checkpointed; only the pairs of tasks present in the batch are read and updated.

    Args:
        beta: EMA rate of the target cosines, in (0, 1].
        eps: added to the norms' products in the divisions.
        seed: seed of the random orders.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, seed: int = 0, mode: str = "params"):
        super().__init__(mode=mode, seed=seed)
        self.beta = check_positive("strategy.weighting.beta", beta)
        if self.beta > 1:
            raise ConfigError("strategy.weighting.beta", f"must be in (0, 1]; got {beta!r}")
        self.eps = check_positive("strategy.weighting.eps", eps, allow_zero=True)
        self.register_buffer("targets", torch.zeros(0, 0, dtype=torch.float64))
        self._present: list[int] = []

    def setup(self, task_names: Sequence[str]) -> None:
        """Start every target cosine at 0 (the paper's initialisation)."""
        super().setup(task_names)
        self.targets = torch.zeros(len(self.task_names), len(self.task_names), dtype=torch.float64)

    def torch_generator(self) -> torch.Generator:
        """A CPU generator seeded by (seed, optimizer step)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.steps))

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """Remember which tasks the rows belong to (their target cosines), then combine as usual."""
        self._present = list(range(len(self.task_names))) if present is None else list(present)
        return super().combine_gradients(rows, present, per_rank)

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """Column sums of the vaccinated gradients' coefficients; updates the targets."""
        gen = self.torch_generator()
        g = torch.as_tensor(gram, dtype=torch.float64)
        idx = torch.as_tensor(self._present[: len(gram)] if self._present else range(len(gram)))
        phi_t = self.targets.cpu()[idx][:, idx].clone()
        m = len(g)
        coeffs = torch.eye(m, dtype=torch.float64)
        for i in range(m):
            cg = coeffs[i] @ g  # g_i' · g_k for every k
            others = [j for j in range(m) if j != i]
            for j in (others[k] for k in torch.randperm(len(others), generator=gen).tolist()):
                norm_i = (cg * coeffs[i]).sum().clamp(min=0.0).sqrt()
                norm_j = g[j, j].clamp(min=0.0).sqrt()
                phi = cg[j] / (norm_i * norm_j + self.eps)
                phi_hat = phi_t[i, j]
                if phi < phi_hat:
                    w = norm_i * (phi_hat * (1 - phi * phi).clamp(min=0.0).sqrt() - phi * (1 - phi_hat * phi_hat).clamp(min=0.0).sqrt())
                    w = w / (norm_j * (1 - phi_hat * phi_hat).clamp(min=0.0).sqrt() + self.eps)
                    coeffs[i, j] += w
                    cg = cg + w * g[j]
                phi_t[i, j] = (1 - self.beta) * phi_hat + self.beta * phi
        targets = self.targets.cpu().clone()
        targets[idx.unsqueeze(1), idx.unsqueeze(0)] = phi_t
        self.targets.copy_(targets)
        return coeffs.sum(dim=0).numpy()
