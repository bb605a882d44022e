"""``TaskJacobian``: every task's gradient from one batched backward pass, kept as per-target blocks.

Why batched: the T per-task backward passes differ only in their ``grad_outputs`` (row k of the
identity for the stacked losses), so ``torch.autograd.grad(..., is_grads_batched=True)`` runs them
as one vmapped pass (what torchjd's ``autojac`` engine does with ``torch.vmap`` over its VJP).
The graph is walked once and freed as it goes (no ``retain_graph`` over T passes), and each
target's gradient arrives as one ``[T, *shape]`` block.

Why blocks rather than one flat ``[T, P]`` matrix: the blocks *are* the T × P floats; copying
them into a flat buffer would hold two copies at once. Methods that need only the Gram matrix
(:attr:`~peftlab.weighting.Weighting.combines_from_gram`) get ``G Gᵀ`` summed block by block and
the combined direction is written into ``.grad`` one block at a time (each block freed after it
is used); methods that work on the raw rows get the flat matrix from :meth:`TaskJacobian.to_rows`,
filled block by block while the blocks are released (one T × P copy, plus one block, at a time).

Embedding tables (``rows``, see :mod:`peftlab.models.embedding_rows`) are differentiated through their
lookups' outputs and kept as a :class:`~peftlab.models.embedding_rows.RowBlock` of the rows the batch
used: the Gram matrix and the combination read only those rows, and ``.grad`` / :meth:`to_rows` get
the dense table (zeros elsewhere), as the optimizer and the raw-row methods expect.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.distributed import all_reduce_mean, world_size
from peftlab.models.embedding_rows import Lookup, RowBlock


class TaskJacobian:
    """Row k is the gradient of the k-th loss with respect to ``targets``, stored as one ``[T, *shape]``
    block per target (None where no loss reaches the target: a zero block).

    Args:
        blocks: one block per target (a :class:`RowBlock` for an embedding table taken by rows), or None.
        targets: the tensors the gradients were taken of (their shapes and numels).
        n_tasks: T.
    """

    def __init__(self, blocks: list[torch.Tensor | RowBlock | None], targets: Sequence[torch.Tensor], n_tasks: int):
        self.blocks, self.targets, self.n_tasks = blocks, list(targets), n_tasks

    @classmethod
    def of(
        cls,
        losses: Sequence[torch.Tensor],
        targets: Sequence[torch.Tensor],
        scale: float = 1.0,
        retain_graph: bool = False,
        rows: dict[int, list[Lookup]] | None = None,
    ) -> "TaskJacobian":
        """The Jacobian of ``losses`` (× ``scale``) with respect to ``targets``, by one batched backward pass.

        ``rows``: target index → the lookups of that embedding table (:func:`~peftlab.models.embedding_rows.row_plan`):
        its gradient is taken of the lookups' outputs and kept as the used rows."""
        rows = rows or {}
        inputs = [t for i, t in enumerate(targets) if i not in rows] + [lk.output for i in sorted(rows) for lk in rows[i]]
        stacked = torch.stack([loss.reshape(()) for loss in losses])
        eye = torch.eye(len(losses), dtype=stacked.dtype, device=stacked.device) * scale
        if len(losses) == 1:  # vmap over one row buys nothing; plain autograd keeps its fast paths
            grads = torch.autograd.grad(stacked, inputs, grad_outputs=eye[0], retain_graph=retain_graph, allow_unused=True)
            grads = [g.unsqueeze(0) if g is not None else None for g in grads]
        else:
            grads = list(torch.autograd.grad(stacked, inputs, grad_outputs=eye, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True))
        n_dense = len(targets) - len(rows)
        dense, looked_up = iter(grads[:n_dense]), grads[n_dense:]
        blocks: list[torch.Tensor | RowBlock | None] = []
        for i in range(len(targets)):
            if i in rows:
                n = len(rows[i])
                blocks.append(RowBlock.scatter(rows[i], looked_up[:n], len(losses)))
                looked_up = looked_up[n:]
            else:
                blocks.append(next(dense))
        del grads, dense
        return cls(blocks, targets, len(losses))

    def all_reduce_mean(self, start: int = 0) -> None:
        """Average the blocks from ``start`` on over DDP ranks (global-batch semantics; a no-op without DDP).

        A parameter this rank's batch did not reach (an MoE expert given no token) has no block here
        but may have one on another rank: it gets a zero block, so every rank issues the same collectives.
        A :class:`RowBlock` becomes its dense block first: the ranks' used rows differ, so row blocks would not line up."""
        if world_size() <= 1:
            return
        for i in range(start, len(self.blocks)):
            if isinstance(self.blocks[i], RowBlock):
                self.blocks[i] = self.blocks[i].dense()
            if self.blocks[i] is None:
                target = self.targets[i]
                self.blocks[i] = target.new_zeros((self.n_tasks, *target.shape))
            all_reduce_mean(self.blocks[i])

    def finite_rows(self, gram: torch.Tensor | None = None, stop: int = 0) -> list[bool]:
        """Per task: whether its whole gradient row is finite.

        ``gram``: the Gram matrix of the first ``stop`` targets (:meth:`gram`), when the caller has it. Its
        diagonal entry k is Σ g² over those blocks' row k, finite only when every entry of the row is (an
        Inf or NaN entry makes it Inf or NaN), so when the whole diagonal is finite those blocks are not read
        again: the check costs one pass over the blocks (the Gram's) instead of two. A non-finite diagonal
        (a non-finite entry, or finite entries whose squares overflow float32) falls back to reading every
        block, so the answer is always the entry-by-entry one.
        """
        ok = torch.ones(self.n_tasks, dtype=torch.bool, device=self.targets[0].device)
        skip = stop if gram is not None and bool(torch.isfinite(gram.diagonal()).all()) else 0
        for block in self.blocks[skip:]:
            if block is not None:
                ok &= torch.isfinite(self._flat(block)).all(dim=1)
        return ok.tolist()

    def gram(self, stop: int) -> torch.Tensor:
        """``G Gᵀ`` (float64, T×T) of the rows restricted to the first ``stop`` targets, summed block by block
        (each block's product in float32, like the flat product was; the sum in float64)."""
        gram = torch.zeros(self.n_tasks, self.n_tasks, dtype=torch.float64, device=self.targets[0].device)
        for block in self.blocks[:stop]:
            if block is not None:
                flat = self._flat(block).float()
                gram += (flat @ flat.T).double()
        return gram

    def combine_into_grads(self, params: Sequence[torch.Tensor], coeffs: torch.Tensor | None, start: int, factor: float) -> None:
        """Add ``factor · Σ_k coeffs_k · row_k`` (``coeffs`` None: the plain sum of the rows) of the targets from
        ``start`` on into ``params``' ``.grad`` (one parameter per target), releasing each block once used."""
        for i, p in zip(range(start, start + len(params)), params):
            block, self.blocks[i] = self.blocks[i], None
            if block is None:
                continue
            flat = self._flat(block).float()
            g = coeffs.to(flat) @ flat if coeffs is not None else flat.sum(dim=0)
            g = block.expand(g) if isinstance(block, RowBlock) else g.view_as(p)
            del block, flat
            if factor != 1.0:
                g.mul_(factor)
            if p.grad is None:
                p.grad = g if g.dtype == p.dtype else g.to(p.dtype)
            else:
                p.grad.add_(g)

    def to_rows(self) -> torch.Tensor:
        """The flat ``[T, P]`` float32 matrix (zeros where a target is unused); the blocks are released as they are copied."""
        sizes = [t.numel() for t in self.targets]
        device = self.targets[0].device
        rows = torch.empty(self.n_tasks, sum(sizes), device=device)  # untouched pages cost nothing until written
        offset = 0
        for i, n in enumerate(sizes):
            block, self.blocks[i] = self.blocks[i], None
            if block is None:
                rows[:, offset : offset + n] = 0
            elif isinstance(block, RowBlock):
                block.write_into(rows[:, offset : offset + n])
            else:
                rows[:, offset : offset + n] = block.reshape(self.n_tasks, -1)
            del block
            offset += n
        return rows

    def _flat(self, block: torch.Tensor | RowBlock) -> torch.Tensor:
        """A block as ``[T, numel]`` (a row block: its used rows only; the rows it leaves out are zero)."""
        return block.flat() if isinstance(block, RowBlock) else block.reshape(self.n_tasks, -1)
