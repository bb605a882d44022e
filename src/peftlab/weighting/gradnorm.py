"""GradNorm (Chen et al. 2018) with weights that stay positive and sum to T."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.distributed import all_reduce_mean, all_reduce_sum, world_size
from peftlab.validators import check_positive
from peftlab.weighting.base import REPRESENTATION, Weighting
from peftlab.weighting.learned_logits import TaskLogits


class GradNormWeighting(Weighting):
    """L = Σ w_i L_i, w = T·softmax(θ): positive and Σw = T by construction.

    θ is learned to balance gradient norms: with G_i = w_i·‖∇_W L_i‖ on the last shared layer W
    (or on the shared representation), r_i = (L_i/L_i(0)) / mean_j(L_j/L_j(0)), the GradNorm
    loss Σ_i |G_i − mean(G)·r_i^asymmetry| (target detached) is differentiated w.r.t. θ and θ
    takes an Adam step at every optimizer step. Implementations that update w directly and
    renormalise can drive a weight negative; the softmax parametrisation cannot.

    Cost: T extra partial backward passes that stop at W (``layer``) or at the features
    (``representation``: they only cross the heads), then one ordinary backward.
    Under DDP the per-task gradients of W are averaged across ranks (T × |W| floats) before their
    norms are taken; in representation mode the squared norms are summed (T floats). Losses are
    averaged across ranks, so θ is identical everywhere.

    Args:
        asymmetry: α of the paper (strength of the pull towards equal training rates).
        w_lr: learning rate of θ's Adam.
        mode: ``layer`` (last shared weight matrix) or ``representation`` (shared features).
    """

    uses_shared = True
    MODES = ("layer", REPRESENTATION)

    def __init__(self, asymmetry: float = 1.5, w_lr: float = 0.025, mode: str = "layer"):
        super().__init__()
        self.asymmetry = check_positive("strategy.weighting.asymmetry", asymmetry, allow_zero=True)
        self.w_lr = check_positive("strategy.weighting.w_lr", w_lr)
        self.mode = self.check_mode(mode)
        self.register_buffer("initial", torch.empty(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str]) -> None:
        """θ = 0 (w = 1), no initial losses yet."""
        super().setup(task_names)
        self.logits = TaskLogits(len(self.task_names), self.w_lr)
        self.initial = torch.full((len(self.task_names),), float("nan"), dtype=torch.float64)
        self._index = {n: i for i, n in enumerate(self.task_names)}

    def weights(self) -> torch.Tensor:
        """Current w = T·softmax(θ)."""
        return len(self.task_names) * torch.softmax(self.logits.value.detach(), dim=0)

    def combine(self, losses: dict[str, torch.Tensor], shared: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Σ w_i L_i with the current w; accumulates θ's GradNorm gradient when ``shared`` is given."""
        w = self.weights()
        idx = [self._index[n] for n in losses]
        if shared is not None and len(losses) > 1 and torch.is_grad_enabled():
            self._accumulate_theta_grad(losses, idx, list(shared))
        return (w[idx].to(next(iter(losses.values())).device) * torch.stack(list(losses.values()))).sum()

    def _grad_norms(self, losses: dict[str, torch.Tensor], shared: list[torch.Tensor]) -> torch.Tensor:
        """‖∇ L_i‖ of each present task on ``shared``, with DDP global-batch semantics."""
        grads = [torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True) for loss in losses.values()]
        flat = torch.stack([torch.cat([(g if g is not None else torch.zeros_like(s)).reshape(-1).float() for g, s in zip(gs, shared)]) for gs in grads])
        if not self.on_representation:
            return all_reduce_mean(flat).norm(dim=1).double()
        sq = all_reduce_sum(flat.pow(2).sum(dim=1).double())  # representation: rows of different samples
        return sq.sqrt() / world_size()

    def _accumulate_theta_grad(self, losses: dict[str, torch.Tensor], idx: list[int], shared: list[torch.Tensor]) -> None:
        norms = self._grad_norms(losses, shared).cpu()
        values = torch.stack([loss.detach().double() for loss in losses.values()])
        values = all_reduce_mean(values.to(shared[0].device)).cpu()  # NCCL needs device tensors
        if not (torch.isfinite(norms).all() and torch.isfinite(values).all()):
            return
        fresh = torch.isnan(self.initial[idx].cpu())
        if bool(fresh.any()):
            init = self.initial.cpu().clone()
            init[torch.tensor(idx)[fresh]] = values[fresh].clamp(min=1e-12)
            self.initial = init.to(self.initial.device)
        ratio = values / self.initial[idx].cpu()
        rate = ratio / ratio.mean()
        theta = self.logits.value.detach().cpu().double().requires_grad_(True)
        with torch.enable_grad():
            w = len(self.task_names) * torch.softmax(theta, dim=0)
            g = w[idx] * norms
            target = (g.mean() * rate.pow(self.asymmetry)).detach()
            (grad,) = torch.autograd.grad((g - target).abs().sum(), theta)
        self.logits.add_grad(grad.float())

    def on_optimizer_step(self) -> None:
        """θ takes its Adam step with the gradient accumulated over the window."""
        self.logits.step()

    def alpha(self) -> dict[str, float]:
        """w."""
        return {n: float(a) for n, a in zip(self.task_names, self.weights())}
