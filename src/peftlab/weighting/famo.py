"""FAMO: Fast Adaptive Multitask Optimization (Liu et al. 2023), O(1) in the number of tasks."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.distributed import all_reduce_mean, world_size
from peftlab.validators import check_positive
from peftlab.weighting.base import Weighting
from peftlab.weighting.learned_logits import TaskLogits


class FAMOWeighting(Weighting):
    """Minimise Σ z_i log L_i (z = softmax(w)), with w learned from how much each loss fell.

    The gradient of Σ z_i log L_i / c, c = Σ z_i / L_i, is Σ α_i ∇L_i with α_i = z_i / (c·L_i)
    (Σα = 1; we multiply by T to keep equal weighting's scale). After each optimizer step,
    w moves along −∇_w Σ z_i·δ_i with δ_i = log L_i(before) − log L_i(after), using Adam
    (lr ``w_lr``, weight decay ``gamma``).

    Difference from the reference code (on purpose, to stay one forward per step): "after" is
    the loss of the *next* optimizer step (its batch), not a second forward on the same batch,
    so w lags one step. Losses are averaged over DDP ranks and over the micro-batches of an
    accumulation window before they enter w, so w is identical on every rank.

    Args:
        w_lr: learning rate of the logits' Adam.
        gamma: weight decay of the logits (pulls z towards uniform).
        min_loss: lower bound of each loss (L_i − min_loss must stay > 0).
    """

    def __init__(self, w_lr: float = 0.025, gamma: float = 1e-3, min_loss: float = 0.0):
        super().__init__()
        self.w_lr = check_positive("strategy.weighting.w_lr", w_lr)
        self.gamma = check_positive("strategy.weighting.gamma", gamma, allow_zero=True)
        self.min_loss = check_positive("strategy.weighting.min_loss", min_loss, allow_zero=True)
        self.eps = 1e-8
        self.register_buffer("prev", torch.empty(0, dtype=torch.float64))
        self.register_buffer("window", torch.empty(0, dtype=torch.float64))
        self.register_buffer("last_alpha", torch.empty(0))

    def setup(self, task_names: Sequence[str]) -> None:
        """Uniform z; no loss history yet."""
        super().setup(task_names)
        t = len(self.task_names)
        self.logits = TaskLogits(t, self.w_lr, self.gamma)
        self.prev = torch.full((t,), float("nan"), dtype=torch.float64)
        self.window = torch.zeros(2, t, dtype=torch.float64)  # rows: loss sums, counts
        self.last_alpha = torch.ones(t)
        self._index = {n: i for i, n in enumerate(self.task_names)}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ α_i L_i with α_i = T·z_i / (c·(L_i − min_loss)), α detached."""
        # the module's guard has already rejected non-finite losses, so no check here
        idx = [self._index[n] for n in losses]
        values = torch.stack(list(losses.values())).detach().double()
        if world_size() > 1:  # global-batch loss, identical on every rank
            values = all_reduce_mean(values)
        values = values.to(self.window.device)
        self.window[0, idx] += values
        self.window[1, idx] += 1.0
        z = torch.softmax(self.logits.value.detach().double(), dim=0)[idx].to(values.device)
        inv = z / (values - self.min_loss).clamp(min=self.eps)
        # scaled by T·Σ_present z: Σα = T when every task is present; a single-task (mixed) batch
        # gets α_i = T·z_i instead of T (c is only known over the tasks present)
        a = len(self.task_names) * z.sum() * inv / inv.sum()
        self.last_alpha[idx] = a.float().to(self.last_alpha.device)
        a = a.float()
        return (a.to(next(iter(losses.values())).device) * torch.stack(list(losses.values()))).sum()

    def on_optimizer_step(self) -> None:
        """Update w from the loss change between the previous and this accumulation window."""
        sums, counts = self.window
        seen = counts > 0
        curr = torch.where(seen, sums / counts.clamp(min=1e-12), torch.full_like(sums, float("nan")))
        both = seen & torch.isfinite(self.prev)
        if bool(both.any()):
            log = lambda v: torch.log((v - self.min_loss).clamp(min=self.eps))  # noqa: E731
            delta = torch.where(both, log(self.prev) - log(curr), torch.zeros_like(curr))
            w = self.logits.value.detach().double().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(torch.softmax(w, dim=0), w, grad_outputs=delta)
            self.logits.add_grad(grad.float())
            self.logits.step()
        self.prev = torch.where(seen, curr, self.prev)
        self.window.zero_()

    def alpha(self) -> dict[str, float]:
        """The α of the last combination (1 before the first step)."""
        return {n: float(a) for n, a in zip(self.task_names, self.last_alpha)}
