"""ExcessMTL: robust multi-task learning with excess risks (He et al., ICML 2024, "Robust Multi-Task
Learning with Excess Risks", PMLR 235).

Defaults as torchjd 0.18's ``ExcessMTLWeighting()``: ``robust_step_size: 1.0``, ``n_warmup_steps: 0``
(the first combination's excess risk is the baseline, as the official code and LibMTL).
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.validators import check_int, check_positive
from peftlab.weighting.base import GradientWeighting

#: torchjd's guards (AdaGrad's square root and the baseline division).
EPS = 1e-7


class ExcessMTLWeighting(GradientWeighting):
    """Weights w on the simplex moved by an exponentiated-gradient step on each task's excess-risk
    estimate: S ← S + g² (AdaGrad's running sum of squared gradients, per task and coordinate),
    e_i = Σ_j g_ij² / √(S_ij + 1e-7), e_i divided by its baseline (the first combination's e_i,
    or the mean over ``n_warmup_steps`` warm-up combinations, during which w stays uniform), and
    w ← softmax(log w + η e). The update is Σ T·w_i g_i (α = T·w, the equal-weighting scale;
    torchjd's w sums to 1). w starts uniform, as the paper and torchjd.

    State (S: T × shared-parameter floats in the rows' precision, at least float32; w, the
    baselines, the warm-up sums and counts) is in buffers, so a resume is exact; the rows are
    rank-averaged, so it is identical on every rank. ``params`` mode only: S accumulates squared
    gradients coordinate by coordinate over steps, which means nothing for the gradients of
    different samples' features. One combination is one micro-batch (accumulation adds to S once
    per micro-batch). With a subset of tasks present (mixed-task batches) only their S, baseline
    and w move (w by the softmax over them, keeping their share of the total).

    Args:
        robust_step_size: η > 0 of the exponentiated-gradient step.
        n_warmup_steps: combinations (≥ 0) with uniform weights whose mean excess risk is the baseline.
        mode: ``params`` only.
    """

    MODES = ("params",)

    def __init__(self, robust_step_size: float = 1.0, n_warmup_steps: int = 0, mode: str = "params"):
        super().__init__(mode=mode)
        self.robust_step_size = check_positive("strategy.weighting.robust_step_size", robust_step_size)
        self.n_warmup_steps = check_int("strategy.weighting.n_warmup_steps", n_warmup_steps, minimum=0)
        self.register_buffer("sq_grad_sum", torch.empty(0))
        for name in ("weights", "baseline", "warmup_sum"):
            self.register_buffer(name, torch.empty(0, dtype=torch.float64))
        self.register_buffer("seen", torch.empty(0, dtype=torch.long))

    def setup(self, task_names: Sequence[str]) -> None:
        """w uniform; no baseline yet (NaN)."""
        super().setup(task_names)
        t = len(self.task_names)
        self.weights = torch.full((t,), 1.0 / t, dtype=torch.float64)
        self.baseline = torch.full((t,), float("nan"), dtype=torch.float64)
        self.warmup_sum = torch.zeros(t, dtype=torch.float64)
        self.seen = torch.zeros(t, dtype=torch.long)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """T·wᵀG after the excess-risk update of w."""
        idx = list(range(len(self.task_names))) if present is None else list(present)
        dtype = torch.promote_types(rows.dtype, torch.float32)
        if self.sq_grad_sum.shape != (len(self.task_names), rows.shape[1]):
            self.sq_grad_sum = rows.new_zeros(len(self.task_names), rows.shape[1], dtype=dtype)
        sq = rows.detach().to(dtype) ** 2
        total = self.sq_grad_sum[idx] + sq
        self.sq_grad_sum[idx] = total
        excess = (sq / torch.sqrt(total + EPS)).sum(dim=1).double().cpu()
        self._step_weights(excess, idx)
        w = self.weights.cpu()[idx]
        return self.record(len(self.task_names) * w.numpy(), idx).to(rows) @ rows

    def _step_weights(self, excess: torch.Tensor, idx: list[int]) -> None:
        """torchjd's warm-up, baseline and exponentiated step, per present task."""
        seen, warm = self.seen.cpu()[idx], self.warmup_sum.cpu()[idx]
        self.seen[idx] += 1
        if int(seen.min()) < self.n_warmup_steps:  # warm-up: collect, keep w
            self.warmup_sum[idx] = (warm + excess).to(self.warmup_sum)
            return
        base = self.baseline.cpu()[idx]
        new = torch.isnan(base)
        if self.n_warmup_steps > 0:
            base = torch.where(new, warm / self.n_warmup_steps, base)
            scaled = excess / (base + EPS)
        else:  # the official code: the first excess risk is the baseline, used unscaled that once
            base = torch.where(new, excess, base)
            scaled = torch.where(new, excess, excess / (base + EPS))
        self.baseline[idx] = base.to(self.baseline)
        w = self.weights.cpu()[idx]
        share = float(w.sum())
        if share > 0:  # (present tasks whose weights underflowed to 0 keep them: log(0/0) is NaN)
            w = share * torch.softmax(torch.log(w / share) + scaled * self.robust_step_size, dim=0)
            self.weights[idx] = w.to(self.weights)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Size S like the checkpoint's before loading it (its width is the model's)."""
        saved = state_dict.get(prefix + "sq_grad_sum")
        if saved is not None:
            self.sq_grad_sum = torch.empty_like(saved, device=self.sq_grad_sum.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
