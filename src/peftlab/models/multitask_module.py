"""MultiTaskModule: shared body → per-task heads → per-task losses → weighting → clipping.

The body comes from the sharing policy (``strategy/sharing``), which also says what trains.
:meth:`MultiTaskModule.training_step` takes one of two paths, chosen from the capability flags
the weighting and clipping declare (``needs_task_gradients``, ``per_task``):

* loss-based weighting: Lightning's automatic optimisation, one backward of the combined loss
  (:func:`~peftlab.models.weighted_loss.weighted_loss`);
* gradient-based weighting or per-task clipping: manual optimisation; the plain function
  :func:`~peftlab.models.per_task_backward.per_task_backward` takes one gradient per task, lets the
  weighting combine them and writes ``.grad``; the module keeps the non-finite guard, logging,
  the optimizer and its own gradient accumulation windows.

Both paths run the non-finite guard and ``strategy/clipping`` right before the optimizer step,
after mixed-precision unscaling, and log ``train/grad_norm`` / ``train/grad_norm_clipped``.
Checkpoints of a pretrained backbone hold only what trains (see :mod:`peftlab.checkpoints.trainable_state`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from peftlab.batch import Inputs, call_body, inputs_size
from peftlab.checkpoints.trainable_state import drop_frozen_weights, restore_frozen_weights
from peftlab.clipping import Clipping, NoClipping, drop_grads, global_norm, grads_of
from peftlab.clipping.guard import NonFiniteGuard, zero_loss
from peftlab.distributed import world_size
from peftlab.errors import ConfigError
from peftlab.models.causal_lm_body import check_causal_lm_body
from peftlab.models.embedding_rows import EmbeddingRecorder
from peftlab.models.evaluation_steps import EvaluationSteps
from peftlab.models.heads import TaskHeads
from peftlab.models.optimizer_settings import check_optimizer_settings
from peftlab.models.per_task_backward import PerTaskBackwardResult, loss_scale, per_task_backward
from peftlab.models.scheduler_settings import check_scheduler_interval, lr_scheduler_config
from peftlab.models.task_losses import task_losses
from peftlab.models.task_metrics import TaskMetrics
from peftlab.models.task_rows import LinearRecorder
from peftlab.models.weighted_loss import shared_representation, weighted_loss
from peftlab.pruning.reparametrization import restore_pruning_reparam
from peftlab.sharing import FullSharing
from peftlab.tasks import TaskSpec, parse_task_specs
from peftlab.tasks.token_cross_entropy import consuming_logits
from peftlab.validators import check_int
from peftlab.weighting import EqualWeighting, Weighting


class MultiTaskModule(EvaluationSteps):
    """A model that trains several tasks at once.

    Args:
        backbone: factory ``backbone() -> nn.Module`` with an ``out_dim`` attribute (a Hydra
            ``_partial_``); the sharing policy decides how many to build.
        tasks: the tasks, in the data's order: :class:`TaskSpec` objects or the config's
            mappings (``${data.tasks}``).
        sharing: the sharing policy (``strategy/sharing``): builds the body, says what trains.
        weighting: combines per-task losses (see :mod:`peftlab.weighting`).
        clipping: clips gradients before each optimizer step (see :mod:`peftlab.clipping`).
        optimizer: factory ``optimizer(params) -> torch.optim.Optimizer``.
        scheduler: optional factory ``scheduler(optimizer) -> LR scheduler``; a ``total_steps`` keyword left
            None gets the run's optimizer steps (see :mod:`~peftlab.models.scheduler_settings`).
        scheduler_interval: ``epoch`` (default) or ``step``: how often the scheduler steps.
        accumulate_grad_batches: micro-batches per optimizer step on the per-task-gradient path
            (wired to ``trainer.accumulate_grad_batches``; Lightning accumulates on the other path).
    """

    def __init__(
        self,
        backbone: Callable[[], nn.Module],
        tasks: Sequence[TaskSpec | Mapping[str, Any]],
        sharing: Any = None,
        weighting: Weighting | None = None,
        clipping: Clipping | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        accumulate_grad_batches: int = 1,
        scheduler_interval: str = "epoch",
    ):
        super().__init__()
        self.tasks = [t for t in tasks] if all(isinstance(t, TaskSpec) for t in tasks) else parse_task_specs(tasks)
        self.task_names = [t.name for t in self.tasks]
        self.sharing = sharing or FullSharing()
        self.body = self.sharing.build(backbone, self.task_names)
        check_causal_lm_body(self.tasks, self.body)
        self.heads = TaskHeads(self.tasks, self.body.out_dim)
        self.weighting = weighting or EqualWeighting()
        self.weighting.setup(self.task_names)
        self.clipping = clipping or NoClipping()
        # per-task gradients (manual optimisation, accumulated here: Lightning refuses
        # Trainer(accumulate_grad_batches>1) there) when the weighting or the clipping needs them
        self.automatic_optimization = not (self.weighting.needs_task_gradients or self.clipping.per_task)
        self.accumulate_grad_batches = 1 if self.automatic_optimization else check_int("trainer.accumulate_grad_batches", accumulate_grad_batches, minimum=1)
        if self.clipping.per_task and self.weighting.on_representation:
            raise ConfigError("strategy.clipping", "per_task clipping needs parameter gradients; use strategy.weighting.mode=params or another clipping (none, norm, value, agc)")
        self.guard = NonFiniteGuard(self.clipping.max_bad_steps, self.task_names)
        self.good_micro_batches = 0  # automatic path: finite micro-batches since the last optimizer step
        self.embedding_lookups = EmbeddingRecorder()  # per-task path: embedding tables' gradients by used rows
        self.linear_calls = LinearRecorder()  # per-task path: one backward when every row has one task
        self._step_metrics: dict[str, torch.Tensor | float] = {}
        self._last_logged_step = -1
        self.optimizer_factory = optimizer or (lambda params: torch.optim.AdamW(params, lr=1e-3))
        check_optimizer_settings(self.optimizer_factory)
        self.scheduler_factory = scheduler
        self.scheduler_interval = check_scheduler_interval(scheduler_interval)
        self.val_metrics = TaskMetrics(self.tasks)
        self.test_metrics = TaskMetrics(self.tasks)
        self.last_test_metrics: dict[str, dict[str, float]] = {}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer trains: the body's share (decided by the sharing policy), the heads, learned α."""
        return self.body.trainable_parameters() + list(self.heads.parameters()) + [p for p in self.weighting.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ model
    def forward(self, inputs: Inputs, task_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Outputs of every task's head: ``{task: [B, out_dim]}`` (``inputs``: a tensor or a dict of tensors;
        ``task_mask``: the batch's, for bodies that route rows by task; None: every row for every task)."""
        return self.heads(call_body(self.body, inputs, task_mask))

    def task_losses(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mean loss of each task over its labelled rows; tasks absent from the batch are left out."""
        return task_losses(self.tasks, self.heads, outputs, batch)

    # --------------------------------------------------------------- training
    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Lightning's backward hook (automatic path): a causal-LM loss may reuse its logits for their gradient."""
        with consuming_logits():
            super().backward(loss, *args, **kwargs)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """Forward, per-task losses, non-finite guard, then the weighted loss for Lightning to differentiate
        (automatic path) or the per-task gradients combined into ``.grad`` and an optimizer step at the
        end of each accumulation window (per-task path). None: the step is skipped (a non-finite task loss or
        weighted total: counted by the guard, which stops the run after ``max_bad_steps`` in a row)."""
        if not self.heads.target_scaling.done:  # a loader without a whole-split view: fit on the first batches
            self.heads.fit_targets(batch["y"], batch["task_mask"])
        by_rows = not self.automatic_optimization and not self.weighting.on_representation
        with self.embedding_lookups.recording(self.body, self.body.shared_parameters() if by_rows else ()), self.linear_calls.recording(self, self.trainable_parameters() if by_rows else ()):
            features = call_body(self.body, batch["inputs"], batch["task_mask"])
            outputs = self.heads(features)
        losses = self.task_losses(outputs, batch)
        if self.automatic_optimization:
            if self.guard.skip_bad_losses(losses):  # every rank skips (a zero loss under DDP, where Lightning needs one)
                return zero_loss(self.parameters()) if world_size() > 1 else None
            loss = weighted_loss(self.weighting, losses, features, self.body)
            if self.guard.skip_bad_total(loss):
                return zero_loss(self.parameters()) if world_size() > 1 else None
            self.good_micro_batches += 1
            self.log_losses(loss, losses, inputs_size(batch["inputs"]))
            return loss
        optimizer = self.optimizers()
        if self.guard.skip_bad_losses(losses):
            optimizer.zero_grad(set_to_none=True)  # drop the whole accumulation window
            return None
        result = self._per_task_backward(features, losses, batch["task_mask"])
        if result.skipped:  # a non-finite gradient row (without a grad scaler, which would skip the step itself)
            optimizer.zero_grad(set_to_none=True)  # drop the whole accumulation window
            self.guard.record_bad("gradient", result.non_finite_tasks)
            return None
        if self.guard.skip_bad_total(result.objective):  # finite rows, but the weighting's objective is not
            optimizer.zero_grad(set_to_none=True)
            return None
        self.log_losses(result.objective, losses, inputs_size(batch["inputs"]))
        if (batch_idx + 1) % self.accumulate_grad_batches == 0 or self.trainer.is_last_batch:
            optimizer.step()  # Lightning unscales 16-mixed gradients, then on_before_optimizer_step
            optimizer.zero_grad(set_to_none=True)
            if self.scheduler_interval == "step" and self.lr_schedulers() is not None:  # manual: ours to step
                self.lr_schedulers().step()
        return result.objective.detach()

    def _per_task_backward(self, features: dict[str, torch.Tensor], losses: dict[str, torch.Tensor], task_mask: torch.Tensor | None = None) -> PerTaskBackwardResult:
        """:func:`per_task_backward` with this module's shared and task-specific parameters, clipping and grad scale."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # 16-mixed
        shared = self.body.shared_parameters()
        skip = {id(p) for p in shared} | {id(p) for p in self.weighting.parameters()}
        return per_task_backward(
            losses,
            shared,
            [p for p in self.trainable_parameters() if id(p) not in skip],
            self.weighting,  # rest: heads (+ per-task backbones)
            features=shared_representation(features) if self.weighting.on_representation else None,
            grad_scale=loss_scale(scaler, next(iter(losses.values())).device),
            clip_rows=self.clipping.clip_rows if self.clipping.per_task else None,
            accumulation=self.accumulate_grad_batches,
            skip_non_finite=scaler is None,
            lookups=self.embedding_lookups.take(),
            linear_calls=self.linear_calls.take(),
            task_mask=task_mask,
        )

    def log_losses(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        """Keep this step's losses for the loggers (and the progress bar on logging steps)."""
        # Step metrics bypass self.log: one self.log call costs Lightning's result collection
        # ~1 ms per step on the digits model (measured with scripts/bench_overhead.py). They are
        # written straight to the loggers every trainer.log_every_n_steps steps (on_train_batch_end);
        # the progress bar keeps the last loss it was given.
        if self._is_logging_step():
            self.log("train/loss", loss.detach(), prog_bar=True, logger=False, batch_size=batch_size)
        self._step_metrics["train/loss"] = loss.detach()
        for name, value in losses.items():
            self._step_metrics[f"train/{name}/loss"] = value.detach()

    # ------------------------------------------- before every optimizer step
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Automatic optimisation: guard, clip, log norms (gradients are unscaled and synced here)."""
        self._before_optimizer_step(optimizer)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Manual optimisation: Lightning calls this after unscaling and skips its own clipping."""
        if not self.automatic_optimization:
            self._before_optimizer_step(optimizer)

    def _before_optimizer_step(self, optimizer) -> None:
        """Non-finite guard, then ``strategy/clipping``; records the norm before and after."""
        grads = grads_of(optimizer)
        good, self.good_micro_batches = self.good_micro_batches, 0
        if self.automatic_optimization and not good:
            # every micro-batch since the last step had a non-finite loss (already counted): no update
            # (under DDP their zero losses left zero gradients, which AdamW would still apply)
            drop_grads(optimizer)
            return
        if not grads:
            return
        before = global_norm(grads)
        if not bool(torch.isfinite(before)):
            scaler = getattr(self.trainer.precision_plugin, "scaler", None)
            if scaler is None:  # with a grad scaler, overflow is routine: the scaler skips the step
                self.guard.record_bad("gradient", [])
            drop_grads(optimizer)  # nothing reaches the weights
            self._step_metrics["train/grad_norm"] = float("nan")
            return
        self.clipping.clip_with_norm(self, optimizer, before)
        self._step_metrics["train/grad_norm"] = before
        if self._is_logging_step():  # the norm after clipping costs a pass over the gradients
            after = before if isinstance(self.clipping, NoClipping) else global_norm(grads)
            self._step_metrics["train/grad_norm_clipped"] = after
        self.guard.record_good()
        self.weighting.on_optimizer_step()

    def _is_logging_step(self) -> bool:
        """Whether the optimizer step being taken is one whose metrics reach the loggers."""
        return (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """Every ``trainer.log_every_n_steps`` optimizer steps: losses, gradient norms, skipped steps."""
        step = self.global_step
        if self._step_metrics and step % max(1, self.trainer.log_every_n_steps) == 0 and step != self._last_logged_step:
            self._last_logged_step = step  # (micro-batches of an accumulation window share a step)
            metrics = {k: float(v) for k, v in self._step_metrics.items()}
            metrics["train/skipped_steps"] = float(self.guard.skipped)
            for logger in self.loggers:  # loggers write on rank zero only
                logger.log_metrics(metrics, step=step)
        self._step_metrics = {}

    def on_train_start(self) -> None:
        """Fit the regression targets' scaling on the training split (a fresh run; resume restores it)."""
        self.heads.fit_targets_from(self.trainer.train_dataloader)

    def on_train_epoch_end(self) -> None:
        """Epoch-level weighting state (DWA); the per-epoch scheduler step on the manual path."""
        self.weighting.on_epoch_end()
        if not self.automatic_optimization and self.scheduler_interval == "epoch":
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def configure_optimizers(self):
        """The configured optimizer over :meth:`trainable_parameters` (and the scheduler, if any)."""
        optimizer = self.optimizer_factory(params=self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = lr_scheduler_config(self.scheduler_factory, optimizer, self.trainer, self.scheduler_interval, self.accumulate_grad_batches)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """A pretrained backbone's frozen weights stay out of the checkpoint (a pointer to them goes in).

        The weighting's per-rank running state (DWA's partial-epoch sums) is gathered on every rank
        here and its entries in the already-taken state dict refreshed, so a mid-epoch resume is exact.
        """
        self.weighting.sync_partial_state()
        checkpoint["state_dict"].update(self.weighting.state_dict(prefix="weighting."))
        drop_frozen_weights(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Make pruned layers maskable, and put the frozen pretrained weights back, before Lightning loads the state."""
        restore_pruning_reparam(self, checkpoint["state_dict"])
        for key, value in self.state_dict().items():  # a checkpoint from before a module kept extra state
            if key.endswith("_extra_state") or ".target_scaling." in key:  # (or scaled targets: it learned raw ones)
                checkpoint["state_dict"].setdefault(key, torch.ones_like(value) if key.endswith(".fitted") else value)
        restore_frozen_weights(self, checkpoint)
