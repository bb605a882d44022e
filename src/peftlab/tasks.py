"""Task specifications: what one task predicts and how it is scored (shared by data/ and models/, which import nothing of each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from peftlab.errors import ConfigError

CLASSIFICATION_METRICS = ("acc", "f1")
REGRESSION_METRICS = ("r2",)


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task problem.

    Args:
        name: task name, used in metric keys (``val/<name>/acc``) and α mappings.
        label: the label column of the data source this task reads.
        num_classes: number of classes; ``0`` means a regression task (one output).
        metric: the main metric, higher is better (``acc``/``f1`` or ``r2``); the run's
            ``score`` is the mean of every task's main metric.
    """

    name: str
    label: str
    num_classes: int
    metric: str = "acc"

    @property
    def is_regression(self) -> bool:
        """Whether the task predicts one real number."""
        return self.num_classes == 0

    @property
    def out_dim(self) -> int:
        """Width of this task's head output."""
        return 1 if self.is_regression else self.num_classes


def parse_task_specs(tasks: Iterable[Mapping[str, Any]], key: str = "data.tasks") -> list[TaskSpec]:
    """Build validated :class:`TaskSpec` objects from config mappings."""
    specs: list[TaskSpec] = []
    for i, raw in enumerate(tasks):
        item_key = f"{key}[{i}]"
        raw = dict(raw)
        unknown = set(raw) - {"name", "label", "num_classes", "metric"}
        if unknown:
            raise ConfigError(item_key, f"unknown field(s) {sorted(unknown)}; allowed: name, label, num_classes, metric")
        if "name" not in raw:
            raise ConfigError(item_key, "every task needs a 'name'")
        name = str(raw["name"])
        num_classes = raw.get("num_classes", 2)
        if not isinstance(num_classes, int) or num_classes < 0 or num_classes == 1:
            raise ConfigError(f"{item_key}.num_classes", f"must be an integer >= 2 (classification) or 0 (regression); got {num_classes!r}")
        allowed = REGRESSION_METRICS if num_classes == 0 else CLASSIFICATION_METRICS
        metric = str(raw.get("metric", allowed[0]))
        if metric not in allowed:
            raise ConfigError(f"{item_key}.metric", f"must be one of {', '.join(allowed)} for this task; got {metric!r}")
        specs.append(TaskSpec(name=name, label=str(raw.get("label", name)), num_classes=num_classes, metric=metric))
    if not specs:
        raise ConfigError(key, "at least one task is required")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(key, f"task names must be unique; got {names}")
    return specs
