"""MultiTaskModule: shared body → per-task heads → per-task losses → weighting → clipping."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from peftlab.clipping import Clipping, NoClipping
from peftlab.data.tasks import TaskSpec
from peftlab.models.heads import TaskHeads
from peftlab.models.task_metrics import TaskMetrics
from peftlab.pruning.reparam import restore_pruning_reparam
from peftlab.sharing import HardSharing
from peftlab.weighting import EqualWeighting, Weighting


class MultiTaskModule(L.LightningModule):
    """A model that trains several tasks at once.

    Args:
        backbone: factory ``backbone(input_shape=...) -> nn.Module`` with an ``out_dim``
            attribute (a Hydra ``_partial_``); the sharing policy decides how many to build.
        tasks: the task specs, in the datamodule's order.
        input_shape: shape of one input sample.
        sharing: an object with ``build(make_backbone, task_names) -> body``.
        weighting: combines per-task losses (see :mod:`peftlab.weighting`).
        clipping: clips gradients before each optimizer step (see :mod:`peftlab.clipping`).
        optimizer: factory ``optimizer(params) -> torch.optim.Optimizer``.
        scheduler: optional factory ``scheduler(optimizer) -> LR scheduler`` (stepped per epoch).
    """

    def __init__(
        self,
        backbone: Callable[..., nn.Module],
        tasks: Sequence[TaskSpec],
        input_shape: Sequence[int],
        sharing: Any = None,
        weighting: Weighting | None = None,
        clipping: Clipping | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ):
        super().__init__()
        self.tasks = list(tasks)
        self.task_names = [t.name for t in self.tasks]
        self.sharing = sharing or HardSharing()
        self.body = self.sharing.build(lambda: backbone(input_shape=tuple(input_shape)), self.task_names)
        self.heads = TaskHeads(self.tasks, self.body.out_dim)
        self.weighting = weighting or EqualWeighting()
        self.weighting.setup(self.task_names)
        self.clipping = clipping or NoClipping()
        self.optimizer_factory = optimizer or (lambda params: torch.optim.AdamW(params, lr=1e-3))
        self.scheduler_factory = scheduler
        self.val_metrics = TaskMetrics(self.tasks)
        self.test_metrics = TaskMetrics(self.tasks)
        self.last_test_metrics: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------------ model
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of every task's head: ``{task: [B, out_dim]}``."""
        return self.heads(self.body(x))

    def task_losses(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean loss of each task over its labelled rows; tasks absent from the batch are left out."""
        mask, y = batch["task_mask"], batch["y"]
        losses: dict[str, torch.Tensor] = {}
        for t, task in enumerate(self.tasks):
            rows = mask[:, t]
            present = int(rows.sum())
            if present == 0:
                continue
            out, target = outputs[task.name], y[:, t]
            if present < len(rows):
                out, target = out[rows], target[rows]
            if task.is_regression:
                losses[task.name] = F.mse_loss(out.squeeze(-1).float(), target)
            else:
                losses[task.name] = F.cross_entropy(out.float(), target.long())
        return losses

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Per-task losses, combined by the weighting method."""
        losses = self.task_losses(self(batch["x"]), batch)
        loss = self.weighting(losses)
        batch_size = len(batch["x"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        for name, value in losses.items():
            self.log(f"train/{name}/loss", value, batch_size=batch_size)
        for name, value in self.weighting.alpha().items():
            self.log(f"alpha/{name}", value, batch_size=batch_size)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Delegate to the configured clipping policy (``strategy/clipping``)."""
        self.clipping.clip(self, optimizer)

    def configure_optimizers(self):
        """The configured optimizer over every trainable parameter (and scheduler, if any)."""
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Make pruned layers maskable before Lightning loads a checkpoint saved with masks."""
        restore_pruning_reparam(self, checkpoint["state_dict"])

    # ------------------------------------------------------------- evaluation
    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: TaskMetrics) -> None:
        outputs = self(batch["x"])
        mask, y = batch["task_mask"], batch["y"]
        for t, task in enumerate(self.tasks):
            rows = mask[:, t]
            if bool(rows.any()):
                metrics.update(task, outputs[task.name][rows], y[rows, t])

    def _log_eval(self, stage: str, metrics: TaskMetrics) -> dict[str, dict[str, float]]:
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
