"""Per-task torchmetrics collections and the score that sweeps optimise."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from peftlab.tasks import TaskSpec


def metrics_for(task: TaskSpec) -> MetricCollection:
    """Accuracy and macro-F1 for classification; MSE and R² for regression."""
    if task.is_regression:
        return MetricCollection({"mse": MeanSquaredError(), "r2": R2Score()})
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=task.num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes=task.num_classes, average="macro"),
        }
    )


class TaskMetrics(nn.Module):
    """One metric collection per task for one stage (val or test)."""

    def __init__(self, tasks: Sequence[TaskSpec]):
        super().__init__()
        self.tasks = list(tasks)
        self.collections = nn.ModuleDict({t.name: metrics_for(t) for t in tasks})

    def update(self, task: TaskSpec, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of one task (outputs and targets of labelled rows only)."""
        if task.is_regression:
            self.collections[task.name].update(output.squeeze(-1).float(), target)
        else:
            self.collections[task.name].update(output.argmax(-1), target.long())

    def compute(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: value}}`` over everything seen since the last reset (synced under DDP)."""
        return {name: {k: float(v) for k, v in coll.compute().items()} for name, coll in self.collections.items()}

    def reset(self) -> None:
        """Forget everything seen so far."""
        for coll in self.collections.values():
            coll.reset()

    def score(self, values: dict[str, dict[str, float]]) -> float:
        """Mean over tasks of each task's main metric."""
        return sum(values[t.name][t.metric] for t in self.tasks) / len(self.tasks)
