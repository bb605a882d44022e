"""``per_task_backward``: per-task gradients, combined by the weighting method, written into ``.grad``.

The shape of torchjd's ``mtl_backward(losses, features, aggregator)``, as a plain function that
knows nothing of Lightning or of the module: the caller hands it the per-task losses, the shared
parameters (and the shared features in ``representation`` mode), the task-specific parameters and
the weighting, and keeps for itself the non-finite guard, logging, the optimizer and the
accumulation window.

1. one batched backward pass (``is_grads_batched``) gives every task's gradient as per-parameter
   ``[T, *shape]`` blocks (:class:`~peftlab.models.task_jacobian.TaskJacobian`; the graph is freed
   as it is walked); in ``params`` mode an embedding table whose only uses are the recorded lookups
   keeps just the rows the batch used (:mod:`~peftlab.models.embedding_rows`);
2. DDP: average the blocks over ranks — global-batch semantics (in ``representation`` mode the
   feature rows stay per rank: they belong to different samples);
3. a method that needs only the Gram matrix (:attr:`~peftlab.weighting.Weighting.combines_from_gram`,
   ``params`` mode, no per-task clipping) gets ``G Gᵀ`` summed block by block (its diagonal doubles
   as the non-finite check), and its combined direction is added into ``.grad`` block by block: the
   per-task gradients are read twice (Gram, combination) and never copied. Everything else gets the flat ``[T, P]`` float32 rows: per-task
   clipping (optional), then a gradient method combines them
   (:meth:`~peftlab.weighting.Weighting.combine_gradients`, its only hook), a loss-based method
   weighs them by ∂objective/∂L_i; each head gets its own task's gradient;
4. added into ``.grad`` divided by the accumulation count (a missing ``.grad`` becomes the combined
   tensor itself, no copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from peftlab.distributed import all_reduce_mean
from peftlab.models.embedding_rows import Lookup, row_plan
from peftlab.models.task_jacobian import TaskJacobian
from peftlab.models.task_rows import LinearCall, blocks_by_task_rows, row_tasks
from peftlab.weighting import Weighting


@dataclass
class PerTaskBackwardResult:
    """What :func:`per_task_backward` did.

    Attributes:
        objective: the weighting's objective of the losses (for logging; the update comes from the rows).
        non_finite_tasks: tasks whose DDP-averaged gradient row holds a NaN/Inf.
        skipped: True when nothing was written into ``.grad`` (non-finite rows and ``skip_non_finite``).
    """

    objective: torch.Tensor
    non_finite_tasks: list[str]
    skipped: bool


def per_task_backward(
    losses: dict[str, torch.Tensor],
    shared: Sequence[nn.Parameter],
    rest: Sequence[nn.Parameter],
    weighting: Weighting,
    *,
    features: torch.Tensor | None = None,
    grad_scale: float = 1.0,
    clip_rows: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
    accumulation: int = 1,
    skip_non_finite: bool = True,
    lookups: Sequence[Lookup] = (),
    linear_calls: Sequence[LinearCall] = (),
    task_mask: torch.Tensor | None = None,
) -> PerTaskBackwardResult:
    """Differentiate each task's loss, combine the gradients with ``weighting`` and add them into ``.grad``.

    Args:
        losses: per-task scalar losses of the tasks present (task name → loss).
        shared: the shared parameters (the weighting combines their per-task gradients).
        rest: the task-specific parameters (heads, per-task backbones): each gets its own task's gradient.
        weighting: the weighting method (``needs_task_gradients``: it combines the rows itself;
            otherwise its objective's ∂/∂L_i weighs them, and its own learned parameters get
            their ordinary gradient).
        features: the shared features (``representation`` mode): the rows are taken of them and the
            combined feature gradient is backpropagated into ``shared``; None: rows of ``shared``.
        grad_scale: the 16-mixed grad scaler's scale (the losses are scaled by it, like ``scaler.scale``).
        clip_rows: per-task clipping, ``clip_rows(rows, grad_scale)`` in place (None: no clipping).
        accumulation: micro-batches per optimizer step (what is added into ``.grad`` is divided by it).
        skip_non_finite: when a task's averaged row is NaN/Inf, write nothing and report it (False
            under a grad scaler, which skips the optimizer step itself).
        lookups: the forward pass's embedding lookups (:class:`~peftlab.models.embedding_rows.EmbeddingRecorder`):
            in ``params`` mode, the tables they allow are differentiated by the rows the batch used.
        linear_calls, task_mask: the forward's calls of the linear layers that hold the parameters
            (:class:`~peftlab.models.task_rows.LinearRecorder`) and the batch's ``task_mask``: when every
            row belongs to one task, every task's gradient comes from one ordinary backward
            (:mod:`~peftlab.models.task_rows`).
    """
    names = list(losses)
    objective = weighting(losses)
    wparams = [p for p in weighting.parameters() if p.requires_grad]
    loss_coeffs, wgrads = None, []
    if not weighting.needs_task_gradients:  # loss-based weighting under per-task clipping: α_i = ∂objective/∂L_i
        grads = torch.autograd.grad(objective, [losses[n] for n in names] + wparams, retain_graph=True, allow_unused=True)
        loss_coeffs = torch.stack([g if g is not None else torch.zeros(()) for g in grads[: len(names)]]).float()
        wgrads = list(grads[len(names) :])

    targets = ([features] if features is not None else list(shared)) + list(rest)
    n_front = 1 if features is not None else len(shared)  # targets the weighting combines
    task_losses = [losses[n] for n in names]
    rows = row_plan(lookups, task_losses, targets[: len(shared)]) if features is None and lookups else None
    tasks = row_tasks(task_mask, [weighting.task_names.index(n) for n in names]) if features is None and linear_calls else None
    blocks = blocks_by_task_rows(task_losses, targets, linear_calls, tasks, grad_scale) if tasks is not None else None
    if blocks is not None:
        jac = TaskJacobian(blocks, targets, len(names))
    else:
        jac = TaskJacobian.of(task_losses, targets, grad_scale, retain_graph=features is not None, rows=rows)
    jac.all_reduce_mean(start=0 if features is None else 1)  # global-batch semantics
    gram_only = loss_coeffs is None and clip_rows is None and features is None and weighting.combines_from_gram
    gram = jac.gram(n_front) if gram_only else None  # its diagonal also answers the finiteness check (one pass, not two)
    bad = [n for n, ok in zip(names, jac.finite_rows(gram, n_front)) if not ok]
    if len(bad) > 1:  # one batched pass: an Inf loss turns the other rows' 0 · Inf into NaN; name the cause
        bad = [n for n in bad if not bool(torch.isfinite(losses[n]).all())] or bad
    if bad and skip_non_finite:
        return PerTaskBackwardResult(objective, bad, skipped=True)
    if gram is not None:
        present = [weighting.task_names.index(n) for n in names]
        coeffs = weighting.gram_coefficients(gram / grad_scale**2 if grad_scale != 1.0 else gram, present)  # of the unscaled rows
        factor = 1.0 / accumulation
        jac.combine_into_grads(shared, coeffs, 0, factor)
        jac.combine_into_grads(rest, None, n_front, factor)
        return PerTaskBackwardResult(objective, bad, skipped=False)

    n_shared = features.numel() if features is not None else sum(p.numel() for p in shared)
    rows = jac.to_rows()
    del jac
    if clip_rows is not None:
        clip_rows(rows, grad_scale)

    shared_rows, head_rows = rows[:, :n_shared], rows[:, n_shared:]
    if loss_coeffs is None:
        present = [weighting.task_names.index(n) for n in names]
        # the method sees unscaled rows (16-mixed): Nash-MTL's norm cap, ExcessMTL's risks and MoDo's step
        # are not scale-free; the direction is scaled back, as Lightning unscales the combined gradient
        if grad_scale != 1.0:
            shared_rows.div_(grad_scale)
        d_shared = weighting.combine_gradients(shared_rows, present, per_rank=features is not None)
        if grad_scale != 1.0:
            d_shared = d_shared * grad_scale
        d_rest = head_rows.sum(dim=0)
    else:
        d_shared = loss_coeffs.to(rows) @ shared_rows
        d_rest = loss_coeffs.to(rows) @ head_rows
    del rows, shared_rows, head_rows

    if features is not None:  # backward from the features through the backbone, then average
        d_shared = flat_grad(torch.autograd.grad(features, shared, grad_outputs=d_shared.view_as(features).to(features.dtype), allow_unused=True), shared, d_shared)
        all_reduce_mean(d_shared)
    flat_w = all_reduce_mean(flat_grad(wgrads, wparams, d_rest) * grad_scale) if wgrads else d_rest.new_zeros(0)
    factor = 1.0 / accumulation
    for params, flat in ((shared, d_shared), (rest, d_rest), (wparams, flat_w)):
        add_grads(params, flat, factor)
    return PerTaskBackwardResult(objective, bad, skipped=False)


def loss_scale(scaler, device: torch.device) -> float:
    """The 16-mixed grad scaler's current scale (1.0 without one): what ``per_task_backward`` multiplies
    the task losses by, like ``scaler.scale(loss)`` would; this also initialises the scaler's lazily
    created scale (Lightning unscales the combined gradient before clipping)."""
    return float(scaler.scale(torch.ones((), device=device))) if scaler is not None else 1.0


def flat_grad(grads: Sequence[torch.Tensor | None], params: Sequence[nn.Parameter], like: torch.Tensor) -> torch.Tensor:
    """The gradients concatenated flat in float32 (zeros for None); an empty tensor on ``like``'s device when there are none."""
    if not params:
        return like.new_zeros(0)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params)])


def add_grads(params: Sequence[nn.Parameter], flat: torch.Tensor, factor: float) -> None:
    """Add slices of ``flat`` (× factor) to the parameters' ``.grad``.

    A missing ``.grad`` becomes a view into ``flat`` (no copy: the combined gradient's buffer is
    the gradient storage until ``zero_grad``), which keeps the per-step peak at T + 1 copies of
    the shared gradient rather than T + 4.
    """
    if factor != 1.0:
        flat.mul_(factor)
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.grad is None:
            p.grad = g if g.dtype == p.dtype else g.to(p.dtype)
        else:
            p.grad.add_(g)
