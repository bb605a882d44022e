"""TaskSpec: one entry of ``data.tasks`` (name, label, kind, metrics), and its parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from peftlab.errors import ConfigError
from peftlab.tasks.base import TaskType
from peftlab.tasks.registry import get_task_type, task_type_names

_FIELDS = ("name", "label", "type", "num_classes", "metric", "metrics")


def inferred_type(num_classes: Any) -> str:
    """The kind of a task that names none: ``regression`` for ``num_classes`` 0, else ``classification``."""
    return "regression" if num_classes == 0 and not isinstance(num_classes, bool) else "classification"


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task problem.

    Args:
        name: task name, used in metric keys (``val/<name>/acc``) and α mappings.
        label: the label column of the shared data source this task reads (a task with its own
            source in ``data.sources`` reads that source's label column).
        num_classes: number of classes of a classification task; ``0`` for a regression task.
        metric: the main metric, higher is better; the run's ``score`` is the mean of every
            task's main metric.
        metrics: every metric computed for the task (the main one first); which ones a kind
            offers: see :class:`~peftlab.tasks.classification.ClassificationTask` and
            :class:`~peftlab.tasks.regression.RegressionTask`.
        type: the kind of task (a registered :class:`TaskType` name); empty: inferred from
            ``num_classes`` (0 → ``regression``, else ``classification``).
    """

    name: str
    label: str
    num_classes: int
    metric: str = ""
    metrics: tuple[str, ...] = ()
    type: str = ""

    def __post_init__(self) -> None:
        # built directly (not by parse_task_specs): fill in the kind and the defaults of the kind
        kind = self.type or inferred_type(self.num_classes)
        if kind not in task_type_names():
            raise ValueError(f"unknown task type {kind!r}; registered: {', '.join(task_type_names())}")
        object.__setattr__(self, "type", kind)
        defaults = self.task_type.default_metrics
        metric = self.metric or defaults[0]
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "metrics", tuple(dict.fromkeys([metric, *(self.metrics or defaults)])))

    @property
    def task_type(self) -> TaskType:
        """What this kind of task is: head, loss, metrics, labels."""
        return get_task_type(self.type)

    @property
    def out_dim(self) -> int:
        """Width of this task's head output."""
        return self.task_type.out_dim(self)


def parse_task_specs(tasks: Iterable[Mapping[str, Any]], key: str = "data.tasks") -> list[TaskSpec]:
    """Build validated :class:`TaskSpec` objects from config mappings.

    ``type`` defaults to the kind ``num_classes`` implies (0: regression, else classification);
    ``metric`` defaults to the first main metric of ``metrics``; ``metrics`` defaults to the
    kind's (acc, f1 for classification; r2, mse for regression); the main metric is always
    computed (it is put first when ``metrics`` leaves it out).
    """
    specs = [_parse_one(dict(raw), f"{key}[{i}]") for i, raw in enumerate(tasks)]
    if not specs:
        raise ConfigError(key, "at least one task is required")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(key, f"task names must be unique; got {names}")
    return specs


def _parse_one(raw: dict[str, Any], item_key: str) -> TaskSpec:
    """One validated task of ``data.tasks`` (``item_key``: ``data.tasks[i]``)."""
    unknown = set(raw) - set(_FIELDS)
    if unknown:
        raise ConfigError(item_key, f"unknown field(s) {sorted(unknown)}; allowed: {', '.join(_FIELDS)}")
    if "name" not in raw:
        raise ConfigError(item_key, "every task needs a 'name'")
    kind = raw.get("type")
    if kind is None:
        kind = inferred_type(raw.get("num_classes"))
    elif kind not in task_type_names():
        raise ConfigError(f"{item_key}.type", f"unknown task type {kind!r}; registered: {', '.join(task_type_names())}")
    task_type = get_task_type(kind)
    num_classes = task_type.num_classes(raw.get("num_classes"), f"{item_key}.num_classes")
    metrics = raw.get("metrics")
    if metrics is None:
        metrics = task_type.default_metrics
    if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics) or not metrics:
        raise ConfigError(f"{item_key}.metrics", f"must be a non-empty list of metric names; got {metrics!r}")
    bad = [m for m in metrics if m not in task_type.metrics]
    if bad:
        raise ConfigError(f"{item_key}.metrics", f"{bad} not available for {kind}; allowed: {', '.join(task_type.metrics)}")
    main = [m for m in metrics if m in task_type.main_metrics]
    metric = str(raw.get("metric") or (main[0] if main else ""))
    if metric not in task_type.main_metrics:
        raise ConfigError(f"{item_key}.metric", f"must be a higher-is-better metric for {kind}: one of {', '.join(task_type.main_metrics)}; got {metric!r}")
    metrics = tuple(dict.fromkeys([metric, *metrics]))  # main first, no duplicates
    return TaskSpec(name=str(raw["name"]), label=str(raw.get("label", raw["name"])), num_classes=num_classes, metric=metric, metrics=metrics, type=kind)
