"""MultiTaskModule: shared body → per-task heads → per-task losses → weighting → clipping.

Two training paths, chosen from the weighting and clipping (``per_task_path``):

* loss-based weighting: Lightning's automatic optimisation (one backward of the combined loss);
* gradient-based weighting or per-task clipping: manual optimisation with one gradient per task
  (see :meth:`MultiTaskModule._manual_step`), gradient accumulation implemented here.

Both paths run the non-finite guard and ``strategy/clipping`` right before the optimizer step,
after mixed-precision unscaling, and log ``train/grad_norm`` / ``train/grad_norm_clipped``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from peftlab.clipping import Clipping, NoClipping, global_norm, grads_of
from peftlab.clipping.guard import NonFiniteGuard
from peftlab.batch import Inputs, call_with_inputs, inputs_size
from peftlab.tasks import TaskSpec
from peftlab.models.heads import TaskHeads
from peftlab.models.task_metrics import TaskMetrics
from peftlab.pruning.reparam import restore_pruning_reparam
from peftlab.sharing import HardSharing
from peftlab.errors import ConfigError
from peftlab.weighting import EqualWeighting, Weighting
from peftlab.weighting.base import all_reduce_mean, all_reduce_sum, world_size


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
        # per-task gradients (gradient-based weighting or per-task clipping) → manual optimisation
        self.per_task_path = bool(self.weighting.needs_task_gradients or self.clipping.per_task)
        self.automatic_optimization = not self.per_task_path
        if self.clipping.per_task and getattr(self.weighting, "mode", "params") == "representation":
            raise ConfigError("strategy.clipping", "per_task clipping needs parameter gradients; use strategy.weighting.mode=params or another clipping (none, norm, value, agc)")
        self.accumulate = 1  # micro-batches per optimizer step on the per-task path (see trainer setter)
        self.guard = NonFiniteGuard(self.clipping.max_bad_steps if hasattr(self.clipping, "max_bad_steps") else 5, self.task_names)
        self._step_metrics: dict[str, torch.Tensor | float] = {}
        self._last_logged_step = -1
        self.optimizer_factory = optimizer or (lambda params: torch.optim.AdamW(params, lr=1e-3))
        self.scheduler_factory = scheduler
        self.val_metrics = TaskMetrics(self.tasks)
        self.test_metrics = TaskMetrics(self.tasks)
        self.last_test_metrics: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------------ model
    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """Outputs of every task's head: ``{task: [B, out_dim]}`` (``inputs``: a tensor or a dict of tensors)."""
        return self.heads(call_with_inputs(self.body, inputs))

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
    @property
    def trainer(self):
        """The attached trainer (see the setter for gradient accumulation on the per-task path)."""
        return L.LightningModule.trainer.fget(self)

    @trainer.setter
    def trainer(self, trainer) -> None:
        # Lightning refuses Trainer(accumulate_grad_batches>1) under manual optimisation, so the
        # per-task-gradient path takes the value over and accumulates itself (_manual_step).
        # A window that does not divide the epoch is stepped at the epoch's last batch.
        if trainer is not None and getattr(self, "per_task_path", False) and hasattr(trainer, "accumulate_grad_batches"):
            if not hasattr(trainer, "_peftlab_accumulate"):
                trainer._peftlab_accumulate = int(trainer.accumulate_grad_batches)
                trainer.accumulate_grad_batches = 1
            self.accumulate = trainer._peftlab_accumulate
        L.LightningModule.trainer.fset(self, trainer)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """Per-task losses, combined by the weighting method (one backward, by Lightning).

        Methods that need per-task gradients (and per-task clipping) take :meth:`_manual_step`.
        A step whose loss is NaN/Inf on any rank returns None: Lightning skips it everywhere.
        """
        if self.per_task_path:
            return self._manual_step(batch, batch_idx)
        features = call_with_inputs(self.body, batch["inputs"])
        losses = self.task_losses(self.heads(features), batch)
        if self._skip_bad_losses(losses):
            return None
        if self.weighting.uses_shared:
            loss = self.weighting.combine(losses, shared=self._shared_for_weighting(features))
        else:
            loss = self.weighting(losses)
        self._log_losses(loss, losses, inputs_size(batch["inputs"]))
        return loss

    def _skip_bad_losses(self, losses: dict[str, torch.Tensor]) -> bool:
        bad = self.guard.bad_loss_tasks(losses)
        if bad:
            self.guard.record_bad("loss", bad)
        return bool(bad)

    def _log_losses(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        # Step metrics bypass self.log: one self.log call costs Lightning's result collection
        # ~1 ms per step on the digits model (measured with scripts/bench_overhead.py). They are
        # written straight to the loggers every trainer.log_every_n_steps steps (on_train_batch_end);
        # the progress bar keeps the last loss it was given.
        if self._is_logging_step():
            self.log("train/loss", loss.detach(), prog_bar=True, logger=False, batch_size=batch_size)
        self._step_metrics["train/loss"] = loss.detach()
        for name, value in losses.items():
            self._step_metrics[f"train/{name}/loss"] = value.detach()

    def _representation(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The shared feature tensor when every task reads the same one (hard sharing), else None."""
        values = list(features.values())
        return values[0] if all(v is values[0] for v in values) and values[0].requires_grad else None

    def _shared_for_weighting(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
        """What GradNorm differentiates: the last shared weight matrix, or the shared features."""
        if getattr(self.weighting, "mode", "layer") == "representation":
            rep = self._representation(features)
            return None if rep is None else [rep]
        matrices = [p for p in self.body.shared_parameters() if p.ndim >= 2]
        return matrices[-1:] or None

    # ------------------------------------------------- per-task gradient path
    def _manual_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """One micro-batch of the per-task-gradient path (manual optimisation).

        1. one forward; per-task losses; the loss-based objective (if any) and dObjective/dL_i;
        2. one ``autograd.grad`` per task into a preallocated [T, P] float32 buffer (each task's
           gradient tensors are freed as soon as they are copied in);
        3. DDP: average the buffer over ranks (one collective) — global-batch semantics;
        4. per-task clipping (optional), combination Σ α_i g_i on the shared part, each head
           gets its own task's gradient; add into ``.grad`` divided by the accumulation count;
        5. at the end of an accumulation window, ``optimizer.step()`` (Lightning unscales 16-mixed
           gradients and calls :meth:`on_before_optimizer_step`, where clipping and the guard run).
        """
        features = call_with_inputs(self.body, batch["inputs"])
        device = batch["y"].device
        losses = self.task_losses(self.heads(features), batch)
        if self._skip_bad_losses(losses):
            self.optimizers().zero_grad(set_to_none=True)  # drop the whole accumulation window
            return None
        names = list(losses)
        gradient_method = self.weighting.needs_task_gradients
        objective = self.weighting(losses)
        wparams = [p for p in self.weighting.parameters() if p.requires_grad]
        loss_coeffs, wgrads = None, []
        if not gradient_method:  # loss-based weighting under per-task clipping: α_i = ∂objective/∂L_i
            grads = torch.autograd.grad(objective, [losses[n] for n in names] + wparams, retain_graph=True, allow_unused=True)
            loss_coeffs = torch.stack([g if g is not None else torch.zeros(()) for g in grads[: len(names)]]).float()
            wgrads = list(grads[len(names) :])

        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        # 16-mixed: scale the task losses like scaler.scale(loss) would (this also initialises the
        # scaler's lazily created scale); Lightning unscales the combined gradient before clipping
        scale = float(scaler.scale(torch.ones((), device=device))) if scaler is not None else 1.0
        shared = self.body.shared_parameters()
        shared_ids = {id(p) for p in shared} | {id(p) for p in wparams}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in shared_ids]
        rep = self._representation(features) if getattr(self.weighting, "mode", "params") == "representation" else None
        targets = ([rep] if rep is not None else shared) + rest
        n_shared = rep.numel() if rep is not None else sum(p.numel() for p in shared)
        sizes = [t.numel() for t in targets]
        rows = torch.zeros(len(names), sum(sizes), device=device)
        for k, name in enumerate(names):
            grads = torch.autograd.grad(losses[name] * scale, targets, retain_graph=True, allow_unused=True)
            offset = 0
            for g, n in zip(grads, sizes):
                if g is not None:
                    rows[k, offset : offset + n] = g.reshape(-1)
                offset += n
            del grads

        world = world_size()
        if rep is None:
            all_reduce_mean(rows)  # global-batch semantics: average each task's gradient over ranks
        else:
            all_reduce_mean(rows[:, n_shared:])
        bad = [n for n, ok in zip(names, torch.isfinite(rows).all(dim=1).tolist()) if not ok]
        if bad and scaler is None:  # (with a grad scaler the scaler skips the step and lowers its scale)
            self.optimizers().zero_grad(set_to_none=True)  # drop the whole accumulation window
            self.guard.record_bad("gradient", bad)
            return None
        if self.clipping.per_task:
            self.clipping.clip_rows(rows, scale)

        head_rows = rows[:, n_shared:]
        shared_rows = rows[:, :n_shared]
        present = [self.task_names.index(n) for n in names]
        if gradient_method:
            if rep is None:
                d_shared = self.weighting.combine_gradients(shared_rows, present)
            else:  # features differ per rank: Gram of the global gradient = Σ_rank Gram / W²
                gram = all_reduce_sum(shared_rows.double() @ shared_rows.double().T) / world**2
                coeffs = self.weighting.record(self.weighting.coefficients(gram.cpu().numpy()), present)
                d_shared = coeffs.to(rows) @ shared_rows
            d_rest = head_rows.sum(dim=0)
        else:
            d_shared = loss_coeffs.to(rows) @ shared_rows
            d_rest = loss_coeffs.to(rows) @ head_rows
        del rows, shared_rows, head_rows

        if rep is not None:  # backward from the features through the backbone, then average
            grads = torch.autograd.grad(rep, shared, grad_outputs=d_shared.view_as(rep).to(rep.dtype), allow_unused=True)
            d_shared = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, shared)])
            all_reduce_mean(d_shared)
        if wgrads:
            flat_w = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() * scale for g, p in zip(wgrads, wparams)])
            all_reduce_mean(flat_w)
        else:
            flat_w = torch.zeros(0, device=device)
        factor = 1.0 / self.accumulate
        for params, flat in ((shared, d_shared), (rest, d_rest), (wparams, flat_w)):
            self._add_grads(params, flat, factor)

        self._log_losses(objective, losses, inputs_size(batch["inputs"]))
        if (batch_idx + 1) % self.accumulate == 0 or self.trainer.is_last_batch:
            opt = self.optimizers()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return objective.detach()

    @staticmethod
    def _add_grads(params: list[nn.Parameter], flat: torch.Tensor, factor: float) -> None:
        """Add slices of ``flat`` (× factor) to the parameters' ``.grad``.

        A missing ``.grad`` becomes a view into ``flat`` (no copy: the combined gradient's
        buffer is the gradient storage until ``zero_grad``), which keeps the per-step peak at
        T + 1 copies of the shared gradient rather than T + 4.
        """
        if factor != 1.0:
            flat.mul_(factor)
        offset = 0
        for p in params:
            g = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is None:
                p.grad = g if g.dtype == p.dtype else g.to(p.dtype)
            else:
                p.grad.add_(g)

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
        if not grads:  # the training step was skipped (non-finite loss): nothing to clip or count
            return
        before = global_norm(grads)
        if not bool(torch.isfinite(before)):
            scaler = getattr(self.trainer.precision_plugin, "scaler", None)
            if scaler is None:  # with a grad scaler, overflow is routine: the scaler skips the step
                self.guard.record_bad("gradient", [])
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # nothing reaches the weights (and AdamW skips params without grad)
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

    def on_train_epoch_end(self) -> None:
        """Epoch-level weighting state (DWA); the per-epoch scheduler step on the manual path."""
        self.weighting.on_epoch_end()
        if not self.automatic_optimization:
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

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
        outputs = self(batch["inputs"])
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
