"""PCD: priority-constrained descent (Varam et al., TMLR 2026, "Not All Objectives Are Born Equal:
Priority-Constrained Descent for Hierarchical Multi-Objective Optimization", arXiv:2606.29521).

Defaults as torchjd 0.18's ``PCD()``: ``tau: 0.02``, ``beta: 0.999``, ``eps: 1e-8``; the primary
task is the first one (torchjd's first row).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_fraction, check_positive
from peftlab.weighting.base import GradientWeighting
from peftlab.weighting.pcd_solver import solve_pcd


class PCDWeighting(GradientWeighting):
    """Follow the primary task's gradient as closely as possible while every other task gets at least
    a fraction τ of the first-order progress of a step along its own normalised gradient:
    d̃ = argmin_d ½‖d − g̃_1‖² s.t. g̃_jᵀd ≥ τ‖g̃_j‖², with g̃_i = g_i / √(v̂_i + ε) and v̂_i the
    bias-corrected EMA (decay β) of ‖g_i‖²; the update is d̃ rescaled to ‖g_1‖.

    Solved exactly on the Gram matrix (:func:`~peftlab.weighting.pcd_solver.solve_pcd`, torchjd's
    dual active-set method). Special cases as torchjd: g_1 = 0 or d̃ = 0 (to the Gram matrix's
    rounding) gives a zero update; infeasible constraints (two opposed secondary tasks) give g_1.
    The EMA and its step count are per-task buffers (checkpointed, identical on every rank: the
    rows are rank-averaged in ``params`` mode and the Gram matrix summed in ``representation``
    mode). A batch without the primary task (mixed-task batches) is combined by the plain sum;
    the present tasks' EMAs still move. The update is on the primary gradient's scale, so the
    reported α is torchjd's weights unchanged (α_primary = the rescaling factor).

    Args:
        tau: guaranteed fraction τ in [0, 1] for every secondary task.
        beta: decay β in [0, 1) of the squared-norm EMA.
        eps: ε ≥ 0 added to the EMA before its inverse square root.
        primary: name of the primary task (null: the first task).
        mode: ``params`` | ``representation`` (see :class:`GradientWeighting`).
    """

    def __init__(self, tau: float = 0.02, beta: float = 0.999, eps: float = 1e-8, primary: str | None = None, mode: str = "params"):
        super().__init__(mode=mode)
        self.tau = check_fraction("strategy.weighting.tau", tau, allow_one=True)
        self.beta = check_fraction("strategy.weighting.beta", beta)
        self.eps = check_positive("strategy.weighting.eps", eps, allow_zero=True)
        self.primary = primary
        self.register_buffer("sq_norm_ema", torch.empty(0, dtype=torch.float64))
        self.register_buffer("ema_steps", torch.empty(0, dtype=torch.long))
        self._present: list[int] = []
        self._precision = 10.0 * torch.finfo(torch.float32).eps

    def setup(self, task_names: Sequence[str]) -> None:
        """Find the primary task; empty EMAs."""
        super().setup(task_names)
        if self.primary is not None and self.primary not in self.task_names:
            raise ConfigError("strategy.weighting.primary", f"unknown task {self.primary!r}; allowed: {', '.join(self.task_names)}")
        self.primary_index = 0 if self.primary is None else self.task_names.index(self.primary)
        self.sq_norm_ema = torch.zeros(len(self.task_names), dtype=torch.float64)
        self.ema_steps = torch.zeros(len(self.task_names), dtype=torch.long)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """Remember the rows' tasks and precision (the solver's tolerances), then combine as usual."""
        self._present = list(range(len(self.task_names))) if present is None else list(present)
        self._precision = 10.0 * torch.finfo(rows.dtype).eps
        return super().combine_gradients(rows, present, per_rank)

    def scales(self, idx: list[int], sq_norms: torch.Tensor) -> torch.Tensor:
        """Fold ``sq_norms`` (tasks ``idx``) into the EMAs; 1/√(v̂ + ε) per task (0 where that is 0)."""
        ema = self.beta * self.sq_norm_ema.cpu()[idx] + (1.0 - self.beta) * sq_norms
        steps = self.ema_steps.cpu()[idx] + 1
        self.sq_norm_ema[idx] = ema.to(self.sq_norm_ema)
        self.ema_steps[idx] = steps.to(self.ema_steps)
        denominators = (ema / (1.0 - self.beta ** steps.double()) + self.eps).sqrt()
        return torch.where(denominators > 0.0, 1.0 / denominators, torch.zeros_like(denominators))

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """PCD's weights of the present tasks (the primary one first in the programme)."""
        idx = self._present[: len(gram)] if self._present else list(range(len(gram)))
        if self.primary_index not in idx:
            self.scales(idx, torch.as_tensor(np.diag(gram).copy(), dtype=torch.float64))
            return np.ones(len(gram))
        first = idx.index(self.primary_index)
        order = [first] + [k for k in range(len(idx)) if k != first]
        g = torch.as_tensor(gram, dtype=torch.float64)[order][:, order]
        sq_norms = g.diagonal()
        scales = self.scales([idx[k] for k in order], sq_norms)
        weights = torch.zeros(len(order), dtype=torch.float64)
        if sq_norms[0] > 0.0:
            normalised = g * torch.outer(scales, scales)
            taus = torch.full((len(order) - 1,), self.tau, dtype=torch.float64)
            w = solve_pcd(normalised, taus, dependence_tol=max(1e-9, self._precision))
            direction_sq_norm = w @ normalised @ w
            magnitude = (w.abs() @ normalised.diagonal().sqrt()) ** 2
            if direction_sq_norm > self._precision * magnitude:
                weights = w * scales * (sq_norms[0] / direction_sq_norm).sqrt()
        out = np.zeros(len(order))
        out[order] = weights.numpy()
        return out
