"""Per-task torchmetrics collections and the score that sweeps optimise."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection, SumMetric

from peftlab.tasks import TaskSpec

# Rows seen by a task's collection since the last reset (synchronised like every other state).
_COUNT = "_count"


def metrics_for(task: TaskSpec) -> MetricCollection:
    """Every metric ``task`` declares (made by its task type), plus a row counter."""
    metrics = {name: task.task_type.make_metric(name, task) for name in task.metrics}
    metrics[_COUNT] = SumMetric()
    return MetricCollection(metrics, compute_groups=False)


class TaskMetrics(nn.Module):
    """One metric collection per task for one stage (val or test)."""

    def __init__(self, tasks: Sequence[TaskSpec]):
        super().__init__()
        self.tasks = list(tasks)
        self.collections = nn.ModuleDict({t.name: metrics_for(t) for t in tasks})

    def update(self, task: TaskSpec, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of one task (outputs and targets of labelled rows only)."""
        coll = self.collections[task.name]
        rows = len(target)
        preds, target = task.task_type.metric_inputs(output, target)
        for name, metric in coll.items():
            if name == _COUNT:
                metric.update(torch.tensor(float(rows), device=target.device))
            else:
                metric.update(preds, target)

    def compute(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: value}}`` (metrics in the task's order, main first) over everything
        seen since the last reset (synced under DDP).

        A task no process has seen a row of gets NaN for each metric instead of a made-up
        number (or torchmetrics' error), and so does a metric undefined on what was seen (R²
        of one sample).
        """
        values: dict[str, dict[str, float]] = {}
        for task in self.tasks:
            coll = self.collections[task.name]
            with warnings.catch_warnings():
                # Under DDP a process may have seen no row of a task (mixed data, short sanity
                # checks) while others did: its metrics must still join the synchronisation
                # inside compute(), so we call it and silence torchmetrics' "compute called
                # before update" warning. The row count is synchronised first, so every
                # process takes the same branch below.
                warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method.*")
                seen = float(coll[_COUNT].compute())
                values[task.name] = {name: self._value(coll[name]) if seen > 0 else math.nan for name in task.metrics}
        return values

    @staticmethod
    def _value(metric: Metric) -> float:
        try:
            return float(metric.compute())
        except ValueError:  # e.g. "Needs at least two samples to calculate r2 score"
            return math.nan

    def reset(self) -> None:
        """Forget everything seen so far."""
        for coll in self.collections.values():
            coll.reset()

    def score(self, values: dict[str, dict[str, float]]) -> float:
        """Mean over tasks of each task's main metric."""
        return sum(values[t.name][t.metric] for t in self.tasks) / len(self.tasks)
