"""CR-MOGM: correlation-reduced multi-objective gradient manipulation (Zhou et al., NeurIPS 2022, "On
the Convergence of Stochastic Multi-Objective Gradient Manipulation and Beyond").

Defaults: ``alpha: 0.9`` (torchjd 0.18's ``CRMOGMWeighting``), ``inner: mgda`` (the paper's main
instance, CR-MGDA; torchjd has no default: the wrapped weighting is an argument).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_choice, check_fraction
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.cagrad import CAGradWeighting
from peftlab.weighting.dualproj import DualProjWeighting
from peftlab.weighting.imtl import IMTLWeighting
from peftlab.weighting.mgda import MGDAWeighting
from peftlab.weighting.upgrad import UPGradWeighting

#: The Gram-matrix methods CR-MOGM can smooth (stateless: their weights depend on this step only).
INNER = {"mgda": MGDAWeighting, "upgrad": UPGradWeighting, "dualproj": DualProjWeighting, "imtl": IMTLWeighting, "cagrad": CAGradWeighting}


class CRMOGMWeighting(GradientWeighting):
    """The weights of an inner method (``inner``, with its defaults) smoothed by an exponential moving
    average across steps: λ_k = a·λ_{k−1} + (1 − a)·λ̂_k, λ_0 = λ̂_1 (so the first step is the
    inner method's); the update is Σ λ_i g_i. The average is linear, so it is taken on the
    equal-weighting scale of α (the inner method's reported α) and equals T × torchjd's for
    methods whose torchjd weights sum to 1.

    λ is a buffer (checkpointed; identical on every rank, as the inner weights are). With a subset
    of tasks present (mixed-task batches) the inner method runs on them and only their λ moves (a
    task's λ starts at its first inner weight).

    Args:
        alpha: a in [0, 1] (0: the inner method unchanged; 1: λ frozen at λ̂_1).
        inner: the method whose weights are smoothed: mgda | upgrad | dualproj | imtl | cagrad.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, alpha: float = 0.9, inner: str = "mgda", mode: str = "params"):
        super().__init__(mode=mode)
        self.ema = check_fraction("strategy.weighting.alpha", alpha, allow_one=True)
        self.inner = INNER[check_choice("strategy.weighting.inner", inner, list(INNER))](mode=mode)
        self.register_buffer("lambd", torch.empty(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str]) -> None:
        """No λ yet (NaN: set from the first inner weights)."""
        super().setup(task_names)
        self.inner.setup(task_names)
        self.lambd = torch.full((len(self.task_names),), float("nan"), dtype=torch.float64)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """Σ λ_i g_i with λ the moving average of the inner method's α."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        gram = self.gram_matrix(rows, per_rank)
        hat = torch.as_tensor(self.inner.coefficients(gram.cpu().numpy()), dtype=torch.float64)
        prev = self.lambd.cpu()[idx]
        prev = torch.where(torch.isnan(prev), hat, prev)
        lam = self.ema * prev + (1.0 - self.ema) * hat
        self.lambd[idx] = lam.to(self.lambd)
        return self.record(lam.numpy(), idx).to(rows) @ rows
