"""Every task's gradient from one ordinary backward pass, when each row of the batch belongs to one task.

Rows never mix inside a model (attention mixes the positions of a row, not the rows of a batch), so
when every row is labelled for exactly one task (a joint batch of per-task sources: an Alpaca row, a
GSM8K row, ...), task t's loss depends only on its own rows. One backward of ``Σ_t L_t`` then gives
every activation the gradient of its own row's task, and the gradient of a linear layer's weight is
``Σ_rows gᵀ x``: split that sum by task and each task's weight gradient is ``G_tᵀ X_t`` over its rows
— the same numbers as T separate backward passes (tested against :class:`TaskJacobian`'s batched
pass), for the cost of one backward plus the T row-split weight products (which together are the
one weight product the plain backward does anyway). The batched pass instead runs the backward T
times over (every activation gradient once per task), which is what per-task gradients cost in
torchjd and LibMTL.

Why by hand: Opacus and BackPACK compute per-*sample* gradients with the same hooks, but keep one
gradient per row (``B × P`` floats); per-task sums need ``T × P``, and neither knows tasks.

It is taken only where it is exact, else :meth:`TaskJacobian.of` runs as before:

* ``params`` mode, every row of the batch labelled for exactly one of the present tasks;
* every parameter to differentiate is the ``weight`` / ``bias`` of an ``nn.Linear`` (LoRA's A and B
  factors, heads, MLP layers) called exactly once during the forward, on an input whose first
  dimension is the batch's rows, and with an output in the autograd graph (not under activation
  checkpointing, whose forward runs again in the backward);
* inside a transformer a layer's input must keep the token layout ``[rows, positions, ...]``: a
  two-dimensional input there may be tokens gathered across rows (a mixture-of-experts layer), whose
  first dimension only happens to equal the rows; heads and non-transformer bodies read ``[rows, D]``;
* the body does not reorder rows (``task_lora`` routes rows sorted by task: not recorded).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from peftlab.models.embedding_rows import weight_users
from peftlab.pruning.masks import _MaskGradient, get_mask


@dataclass
class LinearCall:
    """One recorded ``nn.Linear`` call: the layer, its input (and the input's graph node), its output (and its version)."""

    layer: nn.Linear
    input: torch.Tensor
    output: torch.Tensor
    input_node: object = None
    version: int = 0


class LinearRecorder:
    """Records the calls of the ``nn.Linear`` layers that hold parameters to differentiate, during one forward (:meth:`recording`)."""

    def __init__(self):
        self.calls: list[LinearCall] = []
        self._tokens_only: set[int] = set()

    @contextmanager
    def recording(self, root: nn.Module, params: Sequence[torch.Tensor]) -> Iterator["LinearRecorder"]:
        """Within the block, every call of a ``nn.Linear`` of ``root`` that holds one of ``params`` is recorded
        (nothing when a module of ``root`` reorders rows: ``routes_by_task``)."""
        self.calls = []
        ids = {id(p) for p in params}
        if not ids or any(getattr(m, "routes_by_task", False) or (isinstance(m, BATCH_NORMS) and m.training) for m in root.modules()):
            yield self  # nothing to record (the automatic path), rows reordered, or rows mixed by batch statistics
            return
        in_transformer = {id(m) for t in root.modules() if _is_transformer(t) for m in t.modules()}
        layers = [m for m in root.modules() if type(m).forward is nn.Linear.forward and any(id(p) in ids for p in m.parameters(recurse=False))]  # x Wᵀ + b, nothing else
        self._tokens_only = {id(m) for m in layers if id(m) in in_transformer}
        handles = [m.register_forward_hook(self._hook) for m in layers]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, layer: nn.Linear, args: tuple, output: torch.Tensor) -> None:
        if args and isinstance(args[0], torch.Tensor):
            x = args[0].detach()
            x = x if x.dim() > 2 or id(layer) not in self._tokens_only else x[None]  # [None]: never the rows
            self.calls.append(LinearCall(layer, x, output, args[0].grad_fn, output._version))

    def take(self) -> list[LinearCall]:
        """The calls recorded so far (the recorder forgets them: they hold activations)."""
        calls, self.calls = self.calls, []
        return calls


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)  # in training, rows mix through the batch's statistics


def _is_transformer(module: nn.Module) -> bool:
    """A Hugging Face model (its linear layers see tokens; some, experts, see them gathered across rows)."""
    return hasattr(module, "config") and hasattr(module, "base_model_prefix")


def row_tasks(task_mask: torch.Tensor | None, columns: Sequence[int]) -> torch.Tensor | None:
    """Each row's task as an index into ``columns`` (the present tasks' columns of ``task_mask``), or None
    when some row is labelled for no task or for several (then the losses share rows)."""
    if task_mask is None or not len(columns):
        return None
    mask = task_mask[:, list(columns)].bool()
    if not bool((mask.sum(dim=1) == 1).all()):
        return None
    return mask.float().argmax(dim=1)


def blocks_by_task_rows(
    losses: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], calls: Sequence[LinearCall], tasks: torch.Tensor | None, scale: float = 1.0
) -> list[torch.Tensor | None] | None:
    """``[T, *shape]`` gradient blocks of ``losses`` (× ``scale``) for ``targets`` from one backward pass
    (see the module docstring), or None when that would not be exact (the caller takes the batched pass)."""
    if tasks is None or not calls or len(losses) < 2:
        return None
    by_param: dict[int, LinearCall] = {}
    for call in calls:
        for p in call.layer.parameters(recurse=False):
            if id(p) in by_param:  # called twice: its gradient is not one gᵀx
                return None
            by_param[id(p)] = call
    rows = len(tasks)
    for t in targets:
        call = by_param.get(id(t))
        if call is None or call.input.dim() < 2 or call.input.shape[0] != rows or call.output.grad_fn is None or call.output._version != call.version:
            return None
        if not any(t is p for p in (call.layer.weight, call.layer.bias)) or not _only_mask_hooks(t):
            return None  # a parametrized weight (weight_orig), or a gradient hook of someone else's
    used = list({id(c): c for c in (by_param[id(t)] for t in targets)}.values())
    if not _used_only_in_their_calls(losses, targets, used):
        return None
    total = torch.stack([loss.reshape(()) for loss in losses]).sum() * scale
    grads = torch.autograd.grad(total, [c.output for c in used], allow_unused=True)
    order = torch.argsort(tasks, stable=True)
    counts = torch.bincount(tasks, minlength=len(losses)).tolist()
    products: dict[int, torch.Tensor] = {}
    for call, g in zip(used, grads):
        layer = call.layer
        n_out, n_in = layer.weight.shape
        g = torch.zeros_like(call.output) if g is None else g
        x = call.input.index_select(0, order).reshape(rows, -1, n_in).to(layer.weight.dtype)
        g = g.index_select(0, order).reshape(rows, -1, n_out).to(layer.weight.dtype)
        weight = layer.weight.new_zeros((len(losses), n_out, n_in))
        bias = layer.bias.new_zeros((len(losses), n_out)) if layer.bias is not None else None
        start = 0
        for k, n in enumerate(counts):
            if n:
                gk, xk = g[start : start + n].reshape(-1, n_out), x[start : start + n].reshape(-1, n_in)
                torch.mm(gk.T, xk, out=weight[k])
                if bias is not None:
                    bias[k] = gk.sum(dim=0)
            start += n
        products[id(layer.weight)] = _masked(weight, layer, "weight")
        if bias is not None:
            products[id(layer.bias)] = _masked(bias, layer, "bias")
    return [products[id(t)] for t in targets]


def _only_mask_hooks(param: torch.Tensor) -> bool:
    """Whether every gradient hook on ``param`` is a pruning mask's (applied here by :func:`_masked`).
    Tensor hooks are not in the autograd graph; ``_backward_hooks`` is where ``Tensor.register_hook`` keeps them."""
    hooks = getattr(param, "_backward_hooks", None) or {}
    return all(isinstance(h, _MaskGradient) for h in hooks.values())


def _masked(block: torch.Tensor, layer: nn.Module, attr: str) -> torch.Tensor:
    """``block`` with the parameter's pruning mask applied to every task's row, as its gradient hook does."""
    mask = get_mask(layer, attr)
    return block.mul_(mask.to(block.dtype)) if mask is not None else block


def _used_only_in_their_calls(losses: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], calls: Sequence[LinearCall]) -> bool:
    """Whether every use of each target in the losses' graph lies inside its recorded call (the nodes
    between the call's output and its input): a weight tied elsewhere, or a layer whose output is
    replaced by a hook computing with the weight (pruned LoRA's ``B @ A``), fails."""
    inside: set[int] = set()
    keep: list[object] = []  # the nodes, alive so that their ids stay unique
    for call in calls:
        stack = [call.output.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node is call.input_node or id(node) in inside or len(inside) > 64 * len(calls):
                continue
            inside.add(id(node))
            keep.append(node)
            stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None and getattr(nxt, "variable", None) is None)
    users = weight_users(losses, {id(t): [] for t in targets})
    return all(users.get(id(t), set()) <= inside for t in targets)
