"""Per-task gradients of embedding tables kept as the rows the batch used, not as dense ``[T, V, D]`` blocks.

A BERT-base word embedding is 30,522 × 768 (21 % of the model's parameters), but a batch of 8 × 128
tokens reads at most 1,024 of its rows: every other row of each task's gradient is zero. Taking the
batched backward with respect to the embedding's *output* (``[T, *ids.shape, D]``) and scatter-adding
it into the used rows (``torch.unique`` + ``index_add_``, what ``embedding_dense_backward`` does) gives
the same numbers as the dense gradient on those rows; the Gram matrix and the combination then read
``T × used × D`` floats instead of ``T × V × D``, and the dense ``[T, V, D]`` block is never allocated.

The row path is taken only where it is exact, else the table's gradient is taken densely as before:

* the table is an ``nn.Embedding`` whose ``weight`` is one of the shared parameters, with
  ``sparse=False`` and ``scale_grad_by_freq=False``, called with positional ids during the forward;
* every use of the weight in the autograd graph is one of the recorded lookups (a weight tied to an
  output projection, GPT-2's ``wte`` / ``lm_head``, also gets a dense gradient from the head: dense path);
* no recorded output was modified in place after the lookup (its version counter is unchanged);
* under DDP the ranks' used rows differ, so an all-reduce of row blocks would not line up:
  :meth:`TaskJacobian.all_reduce_mean` turns them back into dense blocks first (the dense path's cost).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn


@dataclass
class Lookup:
    """One recorded ``nn.Embedding`` call: the table, its padding row, the ids and the output (with its version)."""

    weight: torch.Tensor
    padding_idx: int | None
    ids: torch.Tensor
    output: torch.Tensor
    version: int


class EmbeddingRecorder:
    """Records the lookups of the shared embedding tables during one forward pass (:meth:`recording`)."""

    def __init__(self):
        self.lookups: list[Lookup] = []

    @contextmanager
    def recording(self, body: nn.Module, shared: Sequence[torch.Tensor]) -> Iterator["EmbeddingRecorder"]:
        """Within the block, every call of an eligible ``nn.Embedding`` of ``body`` whose weight is in ``shared`` is recorded."""
        self.lookups = []
        ids = {id(p) for p in shared}
        tables = [m for m in body.modules() if isinstance(m, nn.Embedding) and id(m.weight) in ids and not m.sparse and not m.scale_grad_by_freq]
        handles = [m.register_forward_hook(self._hook) for m in tables]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, module: nn.Embedding, args: tuple, output: torch.Tensor) -> None:
        if args and isinstance(args[0], torch.Tensor) and output.requires_grad and output.grad_fn is not None:
            self.lookups.append(Lookup(module.weight, module.padding_idx, args[0].detach(), output, output._version))

    def take(self) -> list[Lookup]:
        """The lookups recorded so far (the recorder forgets them: they hold the outputs)."""
        lookups, self.lookups = self.lookups, []
        return lookups


def row_plan(lookups: Sequence[Lookup], losses: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> dict[int, list[Lookup]]:
    """Target index → its lookups, for the tables whose per-task gradient can be taken by rows exactly (see the module doc)."""
    by_weight: dict[int, list[Lookup]] = {}
    for lk in lookups:
        by_weight.setdefault(id(lk.weight), []).append(lk)
    index = {id(t): i for i, t in enumerate(targets)}
    candidates = {w: lks for w, lks in by_weight.items() if w in index and all(lk.output._version == lk.version for lk in lks)}
    if not candidates:
        return {}
    users = weight_users(losses, candidates)
    plan = {}
    for w, lks in candidates.items():
        recorded = {id(lk.output.grad_fn) for lk in lks}
        if users.get(w, set()) <= recorded:  # every use of the weight is a recorded lookup (not tied to a head)
            plan[index[w]] = lks
    return plan


def weight_users(losses: Sequence[torch.Tensor], weights: dict[int, list[Lookup]]) -> dict[int, set[int]]:
    """For each weight (by id): the ids of the graph nodes that feed its gradient accumulator (one walk of the losses' graph)."""
    users: dict[int, set[int]] = {}
    seen: dict[int, object] = {}  # id → node, kept alive so that ids stay unique during the walk
    stack = [loss.grad_fn for loss in losses if loss.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            var = getattr(nxt, "variable", None)
            if var is not None:
                if id(var) in weights:
                    users.setdefault(id(var), set()).add(id(node))
            elif id(nxt) not in seen:
                stack.append(nxt)
    return users


class RowBlock:
    """Rows ``indices`` (sorted, unique) of a ``[T, V, D]`` per-task gradient whose other rows are zero: ``values`` is ``[T, len(indices), D]``."""

    def __init__(self, indices: torch.Tensor, values: torch.Tensor, shape: torch.Size):
        self.indices, self.values, self.shape = indices, values, shape

    @classmethod
    def scatter(cls, lookups: Sequence[Lookup], grads: Sequence[torch.Tensor | None], n_tasks: int) -> "RowBlock | None":
        """Sum each lookup's output gradient (``[T, *ids.shape, D]``) into the rows of its ids (padding ids left out, as
        ``nn.Embedding``'s backward does); None when no loss reached any lookup."""
        weight = lookups[0].weight
        ids, rows = [], []
        for lk, g in zip(lookups, grads):
            if g is None:
                continue
            flat_ids, flat_g = lk.ids.reshape(-1), g.reshape(n_tasks, -1, weight.shape[1])
            if lk.padding_idx is not None:
                keep = flat_ids != lk.padding_idx
                flat_ids, flat_g = flat_ids[keep], flat_g[:, keep]
            ids.append(flat_ids)
            rows.append(flat_g)
        if not ids:
            return None
        used, inverse = torch.unique(torch.cat(ids), return_inverse=True)
        grad = torch.cat(rows, dim=1)
        values = grad.new_zeros(n_tasks, len(used), weight.shape[1]).index_add_(1, inverse, grad)
        return cls(used, values, weight.shape)

    def dense(self) -> torch.Tensor:
        """The full ``[T, V, D]`` block (zeros outside the used rows)."""
        out = self.values.new_zeros(self.values.shape[0], *self.shape)
        return out.index_copy_(1, self.indices, self.values)

    def flat(self) -> torch.Tensor:
        """The used rows as ``[T, used × D]`` (what the Gram matrix and the non-finite check read)."""
        return self.values.reshape(self.values.shape[0], -1)

    def expand(self, used_rows: torch.Tensor) -> torch.Tensor:
        """A dense ``[V, D]`` tensor holding ``used_rows`` (``[used, D]`` or flat) at the used rows, zeros elsewhere."""
        out = used_rows.new_zeros(self.shape)
        return out.index_copy_(0, self.indices, used_rows.reshape(len(self.indices), -1))

    def write_into(self, rows: torch.Tensor) -> None:
        """Write the block into ``rows`` (a ``[T, V × D]`` slice of the flat rows): zeros, then the used rows."""
        rows.zero_()
        rows.view(rows.shape[0], *self.shape).index_copy_(1, self.indices, self.values.to(rows.dtype))
