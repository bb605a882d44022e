"""Classification: ``num_classes`` logits per row, cross-entropy, accuracy / F1 / MCC."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

from peftlab.errors import ConfigError
from peftlab.tasks.base import SpecFields, TaskType
from peftlab.tasks.registry import register_task_type


@register_task_type
class ClassificationTask(TaskType):
    """One class id per row out of ``num_classes`` (>= 2).

    Metrics: ``acc`` (accuracy), ``f1`` (F1 of class 1 for two classes — GLUE's MRPC/QQP F1,
    scikit-learn's default — macro-F1 for more), ``mcc`` (Matthews correlation); all may be main.
    Labels are class ids stored as floats; a task's own source is split stratified by them.
    """

    name = "classification"
    metrics = ("acc", "f1", "mcc")
    default_metrics = ("acc", "f1")
    main_metrics = ("acc", "f1", "mcc")
    stratify = True

    def num_classes(self, value: Any, key: str) -> int:
        """``num_classes``: an integer >= 2 (2 when left out)."""
        value = 2 if value is None else value
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ConfigError(key, f"must be an integer >= 2 (classification) or 0 (regression); got {value!r}")
        return value

    def out_dim(self, spec: SpecFields) -> int:
        """One logit per class."""
        return spec.num_classes

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits against the class ids."""
        return F.cross_entropy(output.float(), target.long())

    def make_metric(self, name: str, spec: SpecFields) -> Metric:
        """acc, f1 or mcc over ``spec.num_classes`` classes."""
        if name == "acc":
            return MulticlassAccuracy(num_classes=spec.num_classes, average="micro")
        if name == "f1":
            if spec.num_classes == 2:
                return BinaryF1Score()
            return MulticlassF1Score(num_classes=spec.num_classes, average="macro")
        if name == "mcc":
            return MulticlassMatthewsCorrCoef(num_classes=spec.num_classes)
        raise ValueError(f"unknown classification metric {name!r}")

    def metric_inputs(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted class ids and true class ids."""
        return output.argmax(-1), target.long()

    def check_labels(self, labels: torch.Tensor, spec: SpecFields) -> tuple[int, str, str] | None:
        """Labels must be integers in ``[0, num_classes)``."""
        bad = ~labels.isnan() & ((labels != labels.round()) | (labels < 0) | (labels >= spec.num_classes))
        if not bool(bad.any()):
            return None
        return int(torch.nonzero(bad)[0]), "num_classes", f"integers in [0, {spec.num_classes})"
