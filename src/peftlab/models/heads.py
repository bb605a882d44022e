"""One output head per task, and the standardisation of the targets of tasks whose type scales them (regression)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from peftlab.distributed import all_reduce_sum, world_size
from peftlab.tasks import TaskSpec


class TargetScaling(nn.Module):
    """Mean and standard deviation of the training targets of each scaled task (buffers: saved in every checkpoint).

    A regression head learns ``(y - mean) / std`` and its output is mapped back, so the head starts
    at the training mean with unit-scale targets (a head starting at 0 against labels in
    0.26–1 scored R² −0.63 on the MiniLM example) while predictions and every metric stay on
    the labels' own scale. Built from the config alone (identity: mean 0, std 1, not fitted);
    fitted once at the start of training (:meth:`fit`), restored exactly by resume, eval and export.
    """

    def __init__(self, num_tasks: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_tasks))
        self.register_buffer("std", torch.ones(num_tasks))
        self.register_buffer("fitted", torch.zeros(num_tasks, dtype=torch.bool))
        self._done: bool | None = None  # cache of fitted.all() (no device sync per step)

    @property
    def done(self) -> bool:
        """Whether every scaled task has its statistics."""
        if self._done is None:
            self._done = bool(self.fitted.all())
        return self._done

    @torch.no_grad()
    def fit(self, y: torch.Tensor, mask: torch.Tensor, across_ranks: bool = True) -> None:
        """Set the statistics of every not-yet-fitted task with >= 2 labelled rows in ``y`` / ``mask``
        (``[N, k]``: the scaled tasks' columns). ``across_ranks``: each rank holds different rows
        (its batches), summed over DDP ranks so every rank gets the same; False when every rank
        passes the same whole split."""
        dtype = torch.float32 if y.device.type == "mps" else torch.float64  # (MPS has no float64)
        m = mask.to(dtype)
        v = torch.where(mask, y.to(dtype), torch.zeros((), dtype=dtype, device=y.device))
        stats = torch.stack([m.sum(0), v.sum(0), (v * v).sum(0)]).to(self.mean.device)
        if across_ranks and world_size() > 1:
            all_reduce_sum(stats)
        n, total, squares = stats
        mean = total / n.clamp(min=1)
        var = ((squares - n * mean * mean) / (n - 1).clamp(min=1)).clamp(min=0)
        std = torch.where(var > 1e-12, var.sqrt(), torch.ones_like(var))  # constant labels: no scaling
        take = (n >= 2) & ~self.fitted
        self.mean.copy_(torch.where(take, mean.to(self.mean.dtype), self.mean))
        self.std.copy_(torch.where(take, std.to(self.std.dtype), self.std))
        self.fitted.copy_(self.fitted | take)
        self._done = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # checkpoints and exports from before target scaling trained on raw targets: identity, fitted
        defaults = {"mean": torch.zeros_like(self.mean), "std": torch.ones_like(self.std), "fitted": torch.ones_like(self.fitted)}
        for name, value in defaults.items():
            state_dict.setdefault(prefix + name, value)
        self._done = None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


FEATURE_OF = {True: "logits", False: "pooled"}  # the entry of a decoder's {"logits", "pooled"} a task reads, by task_type.generates


def _entry(features: Any, key: str) -> torch.Tensor:
    """``features[key]`` when the body gives several kinds of features (a mapping), else ``features``."""
    return features[key] if isinstance(features, dict) else features


class TaskHeads(nn.Module):
    """A head per task on top of that task's features, made by the task's type.

    ``forward(features)`` takes ``{task: [B, in_dim]}`` and returns ``{task: [B, out_dim]}``
    (class logits, or one value for regression tasks, on the labels' scale: see
    :class:`TargetScaling` and :class:`~peftlab.tasks.TaskType`). A decoder serving both kinds of
    task gives each task ``{"logits", "pooled"}``: a generating task's head reads the token logits,
    the others' the pooled features (:data:`FEATURE_OF`).
    """

    def __init__(self, tasks: Sequence[TaskSpec], in_dim: int):
        super().__init__()
        self.heads = nn.ModuleDict({t.name: t.task_type.make_head(in_dim, t) for t in tasks})
        self.reads = {t.name: FEATURE_OF[bool(t.task_type.generates)] for t in tasks}
        self.scaled_columns = [i for i, t in enumerate(tasks) if t.task_type.scales_targets]
        self.scaled = {tasks[i].name: k for k, i in enumerate(self.scaled_columns)}
        self.target_scaling = TargetScaling(len(self.scaled_columns))

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply each task's head to its features (scaled tasks mapped back to the labels' scale)."""
        out = {name: head(_entry(features[name], self.reads[name])) for name, head in self.heads.items()}
        for name, k in self.scaled.items():
            out[name] = out[name] * self.target_scaling.std[k] + self.target_scaling.mean[k]
        return out

    def standardised(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """``values`` (outputs or targets of task ``name``, on the labels' scale) in the units the head learns."""
        k = self.scaled.get(name)
        if k is None:
            return values
        return (values - self.target_scaling.mean[k]) / self.target_scaling.std[k]

    def fit_targets(self, y: torch.Tensor, task_mask: torch.Tensor, across_ranks: bool = True) -> None:
        """Fit :class:`TargetScaling` from targets ``[N, T]`` and their mask (every task's column, in task order)."""
        if self.scaled_columns and not self.target_scaling.done:
            cols = torch.tensor(self.scaled_columns, device=y.device)
            self.target_scaling.fit(y.index_select(1, cols), task_mask.index_select(1, cols).bool(), across_ranks)

    def fit_targets_from(self, loader: Any) -> None:
        """Fit from the whole training split when ``loader.dataset`` exposes ``y`` and ``task_mask``
        (peftlab's datamodule does; every rank holds the same split), else leave it to the first batches."""
        dataset = getattr(loader, "dataset", None)
        y, mask = getattr(dataset, "y", None), getattr(dataset, "task_mask", None)
        if isinstance(y, torch.Tensor) and isinstance(mask, torch.Tensor) and y.ndim == 2 and y.shape == mask.shape:
            self.fit_targets(y, mask, across_ranks=False)  # every rank holds the same whole split
            self.target_scaling.fitted.fill_(True)  # the whole split was seen: a task without training rows keeps the identity
            self.target_scaling._done = True
