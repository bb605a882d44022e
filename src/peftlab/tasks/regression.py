"""Regression: one real number per row, mean squared error, correlation / R² / MSE."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanSquaredError, Metric, PearsonCorrCoef, R2Score, SpearmanCorrCoef

from peftlab.errors import ConfigError
from peftlab.tasks.base import SpecFields, TaskType
from peftlab.tasks.registry import register_task_type


@register_task_type
class RegressionTask(TaskType):
    """One real number per row (``num_classes`` 0 or left out).

    Metrics: ``pearson``, ``spearman``, ``r2`` (may be main) and ``mse`` (lower is better, so
    never main). Labels are any real numbers; splits are not stratified by them. The head learns
    standardised targets (``scales_targets``); predictions and metrics are on the labels' scale.
    """

    name = "regression"
    metrics = ("pearson", "spearman", "r2", "mse")
    default_metrics = ("r2", "mse")
    main_metrics = ("pearson", "spearman", "r2")
    scales_targets = True

    def num_classes(self, value: Any, key: str) -> int:
        """``num_classes``: 0 or left out."""
        if value is not None and (value != 0 or isinstance(value, bool)):
            raise ConfigError(key, f"a regression task has no classes: leave it out or set 0; got {value!r}")
        return 0

    def out_dim(self, spec: SpecFields) -> int:
        """One value."""
        return 1

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the one output against the label."""
        return F.mse_loss(output.squeeze(-1).float(), target.float())

    def make_metric(self, name: str, spec: SpecFields) -> Metric:
        """pearson, spearman, r2 or mse."""
        if name == "pearson":
            return PearsonCorrCoef()
        if name == "spearman":
            return SpearmanCorrCoef()
        if name == "r2":
            return R2Score()
        if name == "mse":
            return MeanSquaredError()
        raise ValueError(f"unknown regression metric {name!r}")

    def metric_inputs(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted values and the labels, as float32 vectors."""
        return output.squeeze(-1).float(), target.float()
