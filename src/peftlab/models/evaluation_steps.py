"""Validation and test hooks of :class:`~peftlab.models.multitask_module.MultiTaskModule`: per-task metrics, the score."""

from __future__ import annotations

import lightning as L
import torch

from peftlab.models.causal_lm_body import evaluation_output
from peftlab.models.task_metrics import TaskMetrics


class EvaluationSteps(L.LightningModule):
    """Validation/test steps of a multi-task module (it sets ``tasks``, ``val_metrics``, ``test_metrics``)."""

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: TaskMetrics) -> None:
        """Update ``metrics`` with every task's labelled rows of ``batch`` (outputs on the labels' scale;
        a causal-LM task's also carry greedy generations: see :func:`evaluation_output`)."""
        outputs = self(batch["inputs"], batch["task_mask"])
        mask = batch["task_mask"]
        for t, task in enumerate(self.tasks):
            rows = mask[:, t]
            if bool(rows.any()):
                target = task.task_type.targets(batch, t)[rows]
                output = evaluation_output(task, self.body, batch["inputs"], rows, outputs[task.name][rows], target)
                metrics.update(task, output, target)

    def _log_eval(self, stage: str, metrics: TaskMetrics) -> dict[str, dict[str, float]]:
        """Log ``<stage>/<task>/<metric>`` and ``<stage>/score``; return the values and reset ``metrics``."""
        values = metrics.compute()
        metrics.reset()
        flat = {f"{stage}/{task}/{k}": v for task, d in values.items() for k, v in d.items()}
        # the values are already synchronised by torchmetrics, so sync_dist averages identical
        # numbers: it changes nothing and keeps Lightning from warning under DDP
        self.log_dict(flat, sync_dist=True)
        self.log(f"{stage}/score", metrics.score(values), prog_bar=True, sync_dist=True)
        return values

    def validation_step(self, batch, batch_idx):
        """Accumulate validation metrics."""
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/<task>/<metric>`` and ``val/score``."""
        self._log_eval("val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        """Accumulate test metrics."""
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        """Log ``test/<task>/<metric>`` and ``test/score``; keep them for ``metrics.json``."""
        self.last_test_metrics = self._log_eval("test", self.test_metrics)
