"""Row → task routing for per-task adapters, whatever the adapter (LoRA or any other kind).

A batch names each row's tasks by ``task_ids`` (``[B]``, one task per row) or ``task_mask``
(``[B, T]`` bool, the batch contract's: every labelled (row, task) pair; one task per row is
the mixed case, all True the joint case); with neither, every row goes to every task
(inference). :func:`route_rows` turns that into the (row, task) pairs, sorted by task then
row, so each task's rows are one contiguous slice of the stacked batch: a mixed batch is
``B`` stacked rows, a joint one ``B × T`` (each row once per task). An adapter layer then
reads its task's slice (:class:`Routing`), and :meth:`RowRoutes.per_task` gives each task its
``[B, D]`` features back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from peftlab.errors import ConfigError


@dataclass
class Routing:
    """Which adapters apply to which rows of the current forward (one object shared by all routed layers).

    ``segments``: ``(adapter, start, end)`` row ranges (rows are sorted by task); ``shared``:
    adapters applied to every row. Kept after the forward on purpose, so activation
    checkpointing recomputes the same routing during backward.
    """

    shared: tuple[str, ...] = ()
    segments: list[tuple[str, int, int]] | None = None


@dataclass
class RowRoutes:
    """One forward's routed (row, task) pairs: ``rows[i]`` is the batch row of stacked row ``i``.

    ``counts[t]`` rows go to task ``t``, stacked rows ``bounds[t]:bounds[t + 1]``.
    """

    n: int
    rows: torch.Tensor
    counts: list[int]
    bounds: list[int]

    def segments(self, names: Sequence[str]) -> list[tuple[str, int, int]]:
        """``(name of task t's adapter, start, end)`` of every task, for :class:`Routing`."""
        return [(name, self.bounds[i], self.bounds[i + 1]) for i, name in enumerate(names)]

    def stack(self, inputs: dict[str, Any], *args: Any) -> tuple[list[Any], dict[str, Any]]:
        """The batch's tensors with one row per routed pair (unchanged when that is the batch itself)."""
        n, rows = self.n, self.rows
        if len(rows) == n and bool(torch.equal(rows, torch.arange(n, device=rows.device))):
            return list(args), dict(inputs)

        def take(v):
            return v.index_select(0, rows) if torch.is_tensor(v) and v.dim() and v.shape[0] == n else v

        return [take(a) for a in args], {k: take(v) for k, v in inputs.items()}

    def per_task(self, h: Any, task_names: Sequence[str]) -> dict[str, Any]:
        """``{task: [B, ...]}`` from the stacked features ``h`` (a tensor whose first dimension is the
        stacked rows, e.g. ``[N, D]`` or a decoder's logits ``[N, L, V]``, or a mapping of such, taken
        entry by entry): row ``b`` of task ``t`` is its routed pair's row when ``b`` went to ``t``,
        else that row through the first task it went to (zeros if none): unlabelled for ``t``, so no
        loss reads it."""
        if isinstance(h, dict):
            entries = {key: self.per_task(value, task_names) for key, value in h.items()}
            return {task: {key: entries[key][task] for key in h} for task in task_names}
        rows, n, counts, bounds = self.rows, self.n, self.counts, self.bounds
        positions = torch.arange(len(rows), device=h.device)
        first = torch.full((n,), len(rows), dtype=torch.long, device=h.device)
        first = first.scatter_reduce(0, rows, positions, reduce="amin")  # each row's first routed pair
        routed = first < len(rows)
        base = h.index_select(0, first.clamp(max=max(len(rows) - 1, 0))) if len(rows) else h.new_zeros(n, *h.shape[1:])
        if not bool(routed.all()):
            base = base * routed.view(-1, *([1] * (h.dim() - 1))).to(base.dtype)
        out = {}
        for i, task in enumerate(task_names):
            s, e = bounds[i], bounds[i + 1]
            if counts[i] == n:  # every row once, in row order: the task's own slice
                out[task] = h[s:e]
            elif counts[i] == 0 or bool(torch.equal(first[rows[s:e]], positions[s:e])):
                out[task] = base  # the task's rows are first pairs: already in base
            else:
                out[task] = base.index_copy(0, rows[s:e], h[s:e])
        return out


def route_rows(n: int, device: Any, task_names: Sequence[str], task_mask: torch.Tensor | None = None, task_ids: Any = None) -> RowRoutes:
    """The (row, task) pairs of a batch of ``n`` rows, sorted by task then row (see the module docstring)."""
    T = len(task_names)
    if task_ids is not None:
        task_ids = torch.as_tensor(task_ids, device=device).long().reshape(-1)
        if task_ids.numel() != n or (task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= T)):
            raise ConfigError("data.tasks", f"task_ids must give one task index in [0, {T}) per row ({n} rows); got shape {tuple(task_ids.shape)}")
        tasks, rows = torch.sort(task_ids, stable=True)
    elif task_mask is not None:
        if task_mask.dim() != 2 or task_mask.shape[0] != n or task_mask.shape[1] != T:
            raise ConfigError(
                "data.tasks",
                f"the batch's task_mask is {tuple(task_mask.shape)} but the per-task adapters were built for {T} tasks ({', '.join(task_names)}) "
                f"and {n} rows; the model's task list must be the data's",
            )
        nz = task_mask.bool().t().nonzero()  # (task, row), ordered by task then row
        rows, tasks = nz[:, 1], nz[:, 0]
    else:
        rows, tasks = torch.arange(n, device=device).repeat(T), torch.arange(T, device=device).repeat_interleave(n)
    counts = torch.bincount(tasks, minlength=T).tolist()
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    return RowRoutes(n, rows, counts, bounds)
