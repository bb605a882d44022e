"""Krum / Multi-Krum: Byzantine-tolerant selection of gradients (Blanchard et al., NeurIPS 2017,
"Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent").

Defaults as torchjd 0.18's ``Krum(n_byzantine, n_selected=1)`` with ``n_byzantine: 0`` (torchjd
has no default for it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_int
from peftlab.weighting.base import GradientWeighting


class KrumWeighting(GradientWeighting):
    """Score every task gradient by the sum of its distances to its T − f − 2 nearest other gradients
    (f = ``n_byzantine``) and average the ``n_selected`` gradients with the lowest scores: a
    robust-aggregation rule that drops outlying tasks (a task whose gradient is far from the
    others' is left out of the step).

    Distances come from the Gram matrix (‖g_i − g_j‖² = A_ii + A_jj − 2A_ij), computed as torchjd
    does. Needs T ≥ f + 3 tasks (checked at setup); a batch with fewer tasks present (mixed-task
    batches) is combined by the plain sum. Reported α = T × torchjd's weights (T / n_selected for a
    selected task, 0 otherwise: the equal-weighting scale, n_selected = T is the plain sum).

    Args:
        n_byzantine: f ≥ 0, the number of tasks that may be outliers.
        n_selected: how many gradients are averaged (1: Krum; more: Multi-Krum), ≥ 1.
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, n_byzantine: int = 0, n_selected: int = 1, mode: str = "params"):
        super().__init__(mode=mode)
        self.n_byzantine = check_int("strategy.weighting.n_byzantine", n_byzantine, minimum=0)
        self.n_selected = check_int("strategy.weighting.n_selected", n_selected, minimum=1)

    def setup(self, task_names: Sequence[str]) -> None:
        """Check that there are enough tasks for f and n_selected."""
        super().setup(task_names)
        t = len(self.task_names)
        if t < self.n_byzantine + 3:
            raise ConfigError("strategy.weighting.n_byzantine", f"Krum needs at least n_byzantine + 3 tasks; got {t} task(s) for n_byzantine={self.n_byzantine}")
        if t < self.n_selected:
            raise ConfigError("strategy.weighting.n_selected", f"must be at most the number of tasks ({t}); got {self.n_selected}")

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """T / n_selected for the selected tasks, 0 for the others."""
        t = len(gram)
        if t < self.n_byzantine + 3 or t < self.n_selected:
            return np.ones(t)
        g = torch.as_tensor(gram, dtype=torch.float64)
        sq = torch.diagonal(g)
        distances = torch.sqrt((sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * g).clamp(min=0.0))
        nearest, _ = torch.topk(distances, k=t - self.n_byzantine - 1, largest=False)
        scores = nearest[:, 1:].sum(dim=1)  # the smallest distance is the gradient's own (0)
        _, selected = torch.topk(scores, k=self.n_selected, largest=False)
        weights = np.zeros(t)
        weights[selected.numpy()] = t / self.n_selected
        return weights
