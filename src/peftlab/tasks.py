"""Task specifications: what one task predicts and how it is scored (shared by data/ and models/, which import nothing of each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from peftlab.errors import ConfigError

# Every metric a task may declare (computed by torchmetrics in models/task_metrics.py).
CLASSIFICATION_METRICS = ("acc", "f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman", "r2", "mse")
# The main metric of a task must be higher-is-better (sweeps maximise the mean of them): not mse.
MAIN_METRICS = ("acc", "f1", "mcc", "pearson", "spearman", "r2")
# What a task computes when it declares no ``metrics``.
DEFAULT_METRICS = {"classification": ("acc", "f1"), "regression": ("r2", "mse")}

_FIELDS = ("name", "label", "num_classes", "metric", "metrics")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task problem.

    Args:
        name: task name, used in metric keys (``val/<name>/acc``) and α mappings.
        label: the label column of the shared data source this task reads (a task with its own
            source in ``data.sources`` reads that source's label column).
        num_classes: number of classes; ``0`` means a regression task (one output).
        metric: the main metric, higher is better; the run's ``score`` is the mean of every
            task's main metric.
        metrics: every metric computed for the task (the main one first). Classification:
            ``acc`` (accuracy), ``f1`` (F1 of class 1 for two classes, macro-F1 otherwise),
            ``mcc`` (Matthews correlation); regression: ``pearson``, ``spearman``, ``r2``, ``mse``.
    """

    name: str
    label: str
    num_classes: int
    metric: str = ""
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # built directly (not by parse_task_specs): fill in the defaults of the task's kind
        defaults = DEFAULT_METRICS["regression" if self.num_classes == 0 else "classification"]
        metric = self.metric or defaults[0]
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "metrics", tuple(dict.fromkeys([metric, *(self.metrics or defaults)])))

    @property
    def is_regression(self) -> bool:
        """Whether the task predicts one real number."""
        return self.num_classes == 0

    @property
    def out_dim(self) -> int:
        """Width of this task's head output."""
        return 1 if self.is_regression else self.num_classes


def parse_task_specs(tasks: Iterable[Mapping[str, Any]], key: str = "data.tasks") -> list[TaskSpec]:
    """Build validated :class:`TaskSpec` objects from config mappings.

    ``metric`` defaults to the first of ``metrics``; ``metrics`` defaults to acc, f1
    (classification) or r2, mse (regression); the main metric is always computed (it is put
    first when ``metrics`` leaves it out).
    """
    specs: list[TaskSpec] = []
    for i, raw in enumerate(tasks):
        item_key = f"{key}[{i}]"
        raw = dict(raw)
        unknown = set(raw) - set(_FIELDS)
        if unknown:
            raise ConfigError(item_key, f"unknown field(s) {sorted(unknown)}; allowed: {', '.join(_FIELDS)}")
        if "name" not in raw:
            raise ConfigError(item_key, "every task needs a 'name'")
        name = str(raw["name"])
        num_classes = raw.get("num_classes", 2)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0 or num_classes == 1:
            raise ConfigError(f"{item_key}.num_classes", f"must be an integer >= 2 (classification) or 0 (regression); got {num_classes!r}")
        kind = "regression" if num_classes == 0 else "classification"
        allowed = REGRESSION_METRICS if num_classes == 0 else CLASSIFICATION_METRICS
        metrics = raw.get("metrics")
        if metrics is None:
            metrics = DEFAULT_METRICS[kind]
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics) or not metrics:
            raise ConfigError(f"{item_key}.metrics", f"must be a non-empty list of metric names; got {metrics!r}")
        bad = [m for m in metrics if m not in allowed]
        if bad:
            raise ConfigError(f"{item_key}.metrics", f"{bad} not available for {kind}; allowed: {', '.join(allowed)}")
        main = [m for m in metrics if m in MAIN_METRICS]
        metric = str(raw.get("metric") or (main[0] if main else ""))
        if metric not in allowed or metric not in MAIN_METRICS:
            choices = [m for m in allowed if m in MAIN_METRICS]
            raise ConfigError(f"{item_key}.metric", f"must be a higher-is-better metric for {kind}: one of {', '.join(choices)}; got {metric!r}")
        metrics = tuple(dict.fromkeys([metric, *metrics]))  # main first, no duplicates
        specs.append(TaskSpec(name=name, label=str(raw.get("label", name)), num_classes=num_classes, metric=metric, metrics=metrics))
    if not specs:
        raise ConfigError(key, "at least one task is required")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(key, f"task names must be unique; got {names}")
    return specs
