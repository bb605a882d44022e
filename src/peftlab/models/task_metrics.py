"""Per-task torchmetrics collections and the score that sweeps optimise."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import nn
from torchmetrics import MeanSquaredError, Metric, MetricCollection, PearsonCorrCoef, R2Score, SpearmanCorrCoef, SumMetric
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

from peftlab.tasks import TaskSpec

# Rows seen by a task's collection since the last reset (synchronised like every other state).
_COUNT = "_count"


def make_metric(name: str, task: TaskSpec) -> Metric:
    """The torchmetrics object behind metric ``name`` of ``task`` (names: see :class:`TaskSpec`).

    ``f1`` is the F1 of class 1 for two classes (GLUE's MRPC/QQP F1, scikit-learn's default) and
    macro-F1 for more.
    """
    if name == "acc":
        return MulticlassAccuracy(num_classes=task.num_classes, average="micro")
    if name == "f1":
        if task.num_classes == 2:
            return BinaryF1Score()
        return MulticlassF1Score(num_classes=task.num_classes, average="macro")
    if name == "mcc":
        return MulticlassMatthewsCorrCoef(num_classes=task.num_classes)
    if name == "pearson":
        return PearsonCorrCoef()
    if name == "spearman":
        return SpearmanCorrCoef()
    if name == "r2":
        return R2Score()
    if name == "mse":
        return MeanSquaredError()
    raise ValueError(f"unknown metric {name!r}")


def metrics_for(task: TaskSpec) -> MetricCollection:
    """Every metric ``task`` declares, plus a row counter."""
    metrics = {name: make_metric(name, task) for name in task.metrics}
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
        for name, metric in coll.items():
            if name == _COUNT:
                metric.update(torch.tensor(float(len(target)), device=target.device))
            elif task.is_regression:
                metric.update(output.squeeze(-1).float(), target.float())
            else:
                metric.update(output.argmax(-1), target.long())

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
