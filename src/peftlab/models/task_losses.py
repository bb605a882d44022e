"""Each task's mean loss over its rows of a batch."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.models.heads import TaskHeads
from peftlab.tasks import TaskSpec


def task_losses(tasks: Sequence[TaskSpec], heads: TaskHeads, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean loss of each task over its labelled rows (``batch["task_mask"]``); tasks absent from the batch are left out.

    A kind with per-row loss terms (:meth:`~peftlab.tasks.base.TaskType.row_loss_terms`: causal_lm) gets
    them once per output and target that several tasks read (causal-LM tasks on one decoder share its
    logits) and takes its rows from them; other kinds get their rows' outputs (regression: standardised)."""
    mask = batch["task_mask"]
    losses: dict[str, torch.Tensor] = {}
    terms: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor] | None] = {}
    alive = []  # the keyed outputs and targets: an id stays unique while its tensor lives
    for t, task in enumerate(tasks):
        rows = mask[:, t]
        present = int(rows.sum())
        if present == 0:
            continue
        out, target = outputs[task.name], task.task_type.targets(batch, t)
        key = (id(out), id(target), task.task_type.name)
        if key not in terms:
            terms[key] = task.task_type.row_loss_terms(out, target)
            alive.append((out, target))
        if terms[key] is not None:
            sums, weights = terms[key] if present == len(rows) else (terms[key][0][rows], terms[key][1][rows])
            losses[task.name] = sums.sum() / weights.sum()
            continue
        if present < len(rows):
            out, target = out[rows], target[rows]
        losses[task.name] = task.task_type.loss(heads.standardised(task.name, out), heads.standardised(task.name, target))
    return losses
