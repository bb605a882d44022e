"""TaskType: what one kind of task is — its head, loss, metrics and labels.

Everything that differs between kinds of task lives in one subclass per kind
(:mod:`~peftlab.tasks.classification`, :mod:`~peftlab.tasks.regression`), registered by name
with :func:`~peftlab.tasks.registry.register_task_type`; the model, the metrics and the data ask
``spec.task_type`` instead of branching on the kind. A new kind is one new file (a registered
subclass) plus its import in ``peftlab/tasks/__init__.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Protocol

import torch
from torch import nn
from torchmetrics import Metric


class SpecFields(Protocol):
    """What a task type reads of a :class:`~peftlab.tasks.spec.TaskSpec` (spec.py imports the
    task types, so they name its fields instead of importing it)."""

    name: str
    num_classes: int


class TaskType:
    """One kind of task (stateless: every method takes the task's :class:`TaskSpec` when it needs it).

    Class attributes a subclass sets:
        name: the kind's name, as written in ``data.tasks[i].type``.
        metrics: every metric a task of this kind may declare.
        default_metrics: what a task computes when it declares no ``metrics`` (the first is its
            default main metric).
        main_metrics: the metrics that may be a task's main metric: higher is better (sweeps
            maximise the mean of the main metrics).
        stratify: whether a task's own source is split stratified by this task's labels.
        scales_targets: whether the head learns standardised targets (``(y - mean) / std`` of the
            training split, kept in the checkpoint) while its outputs and metrics stay on the
            labels' scale (see :class:`~peftlab.models.heads.TargetScaling`).
        generates: whether the task's outputs are token logits of a decoder's LM head and its
            evaluation generates text (``causal_lm``): the body must be a causal LM.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    default_metrics: ClassVar[tuple[str, ...]] = ()
    main_metrics: ClassVar[tuple[str, ...]] = ()
    stratify: ClassVar[bool] = False
    scales_targets: ClassVar[bool] = False
    generates: ClassVar[bool] = False

    # ------------------------------------------------------------- the spec
    def num_classes(self, value: Any, key: str) -> int:
        """The task's ``num_classes`` (``value``: as configured, None when left out) checked for
        this kind; ``key`` names it in the ConfigError."""
        raise NotImplementedError

    # ------------------------------------------------------------- the model
    def out_dim(self, spec: SpecFields) -> int:
        """Width of the task's head output."""
        raise NotImplementedError

    def make_head(self, in_dim: int, spec: SpecFields) -> nn.Module:
        """The task's head: features ``[B, in_dim]`` → outputs ``[B, out_dim]`` (a linear layer)."""
        return nn.Linear(in_dim, self.out_dim(spec))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over the given rows, computed in float32 (``output``: the head's, ``target``:
        :meth:`targets`' for the same rows)."""
        raise NotImplementedError

    def row_loss_terms(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(loss sum, weight)`` per row ``[B]`` for a kind whose loss over some rows is Σ sums / Σ weights
        of those rows (causal_lm: token losses and token counts), or None (the default: :meth:`loss`
        of the rows' outputs). With terms, the module computes them once per batch for every task that
        reads the same output and takes each task's rows from them, instead of copying each task's
        rows of the output (for a decoder, its ``[B, L, V]`` logits) and their gradient."""
        return None

    # ------------------------------------------------------------ the metrics
    def make_metric(self, name: str, spec: SpecFields) -> Metric:
        """The torchmetrics object behind metric ``name`` (one of :attr:`metrics`) of task ``spec``."""
        raise NotImplementedError

    def metric_inputs(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(preds, target)`` that every metric of this kind is updated with."""
        raise NotImplementedError

    # ------------------------------------------------------------- the labels
    def label_column(self, labels: torch.Tensor) -> torch.Tensor:
        """How a source's label column is stored in the batches' ``y`` (float32, NaN: not labelled)."""
        return labels.float()

    def check_labels(self, labels: torch.Tensor, spec: SpecFields) -> tuple[int, str, str] | None:
        """The first labelled row this kind cannot take, as ``(row, spec field, what labels must
        be)`` (the field is named in the ConfigError); None when every label is fine."""
        return None

    def targets(self, batch: Mapping[str, Any], t: int) -> torch.Tensor:
        """Task ``t``'s targets for every row of ``batch`` (the loss and metrics select the rows)."""
        return batch["y"][:, t]
