"""The pruning callback: follows a schedule in optimizer steps (or fractions of the run) through
Lightning's hooks, and checkpoints and reports it.

What is pruned and how masks are computed is :class:`peftlab.pruning.pruned_weights.PrunedWeights`'s;
where the schedule stands is :class:`peftlab.pruning.progress.ScheduleProgress`'s. Adapters are
asked of the model's body (``PolicyBody.adapter_layers()``/``adapter_modules()``): their own
layers are never pruned, and their update of a pruned unit is zeroed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import nn

from peftlab.callbacks.calibration_batches import EvalMode, calibration_batches, check_calibration, model_forward
from peftlab.callbacks.eligible_checkpoint import EligibleModelCheckpoint
from peftlab.errors import ConfigError
from peftlab.models.scheduler_settings import planned_optimizer_steps
from peftlab.pruning.criteria import Criterion, Magnitude
from peftlab.pruning.n_m import n_m_sparsity
from peftlab.pruning.progress import ScheduleProgress
from peftlab.pruning.pruned_weights import PrunedWeights
from peftlab.pruning.report import schedule_report
from peftlab.pruning.schedules import Schedule, check_step_or_fraction, to_steps
from peftlab.pruning.selection import Target
from peftlab.pruning.unit_groups import UnitGroup
from peftlab.sharing.base import PolicyBody

KEY = "strategy.pruning"


def body_of(model: nn.Module) -> PolicyBody | None:
    """The model's sharing-policy body (what adapters are asked of), or None (a plain network)."""
    body = getattr(model, "body", None)
    return body if isinstance(body, PolicyBody) else None


class PruningCallback(L.Callback):
    """Prune a model during training (``strategy/pruning=<name>``).

    Args:
        criterion: a :class:`~peftlab.pruning.criteria.Criterion` (magnitude, global_magnitude,
            random, movement, neurons, heads).
        schedule, start_step, end_step, every_n_steps, initial_sparsity, final_sparsity, amount:
            see :class:`~peftlab.pruning.schedules.Schedule`; step bounds are an int (optimizer
            step) or a float in [0, 1] (fraction of the run's optimizer steps).
        scope, module_types, include, exclude, parameters: what is prunable
            (:func:`~peftlab.pruning.selection.select_targets`).
        rewind_step: lottery-ticket rewinding: snapshot the weights after this many steps (int, or
            a fraction of the run) and reset the survivors to it once the final sparsity is
            reached (null: off).
        best_at_final_sparsity: only let a monitored checkpoint pick a "best" checkpoint once the
            final sparsity is reached (last.ckpt is still written every time); the monitored
            checkpoint callback must then be a
            :class:`~peftlab.callbacks.eligible_checkpoint.EligibleModelCheckpoint`, which asks
            :meth:`best_checkpoint_eligible`.
        calibration: ``{batches: n, seed: s}``, the training batches Wanda and SparseGPT score from (seed null: the data order)
            (ignored by the other criteria).
    """

    def __init__(
        self,
        criterion: Criterion | None = None,
        schedule: str = "cubic",
        start_step: int | float = 0,
        end_step: int | float = 100,
        every_n_steps: int | float = 10,
        initial_sparsity: float = 0.0,
        final_sparsity: float = 0.5,
        amount: float | None = None,
        scope: str | None = "body",
        module_types: Sequence[str] = ("Linear", "Conv1d", "Conv2d"),
        include: str | None = None,
        exclude: str | None = None,
        parameters: Sequence[str] = ("weight",),
        rewind_step: int | float | None = None,
        best_at_final_sparsity: bool = True,
        calibration: dict | None = None,
    ):
        self.criterion = criterion or Magnitude()
        self.schedule = Schedule(schedule, start_step, end_step, every_n_steps, initial_sparsity, final_sparsity, amount, KEY)
        self.calibration = check_calibration(calibration)
        n_m = self.criterion.n_m
        if n_m is not None and abs(n_m_sparsity(n_m) - self.schedule.final_sparsity) > 1e-9:
            raise ConfigError(f"{KEY}.final_sparsity", f"{final_sparsity} but criterion.n_m={list(n_m)} keeps {n_m[0]} of every {n_m[1]}: set final_sparsity={n_m_sparsity(n_m):g}")
        self.selection = dict(scope=scope, module_types=list(module_types), include=include, exclude=exclude, parameters=list(parameters))
        if rewind_step is not None:
            check_step_or_fraction(f"{KEY}.rewind_step", rewind_step)
            self._check_rewind(rewind_step, self.schedule.end_step)
        self.rewind_step = self.rewind_bound = rewind_step
        self.best_at_final_sparsity = best_at_final_sparsity
        self.progress = ScheduleProgress()  # checkpointed
        self.weights = PrunedWeights(self.criterion, self.selection, KEY)  # rebuilt on setup

    # ------------------------------------------------------------ wiring
    @property
    def targets(self) -> list[Target]:
        """The prunable weights (after :meth:`attach`)."""
        return self.weights.targets

    @property
    def groups(self) -> list[UnitGroup]:
        """The unit groups a structured criterion prunes (after :meth:`attach`)."""
        return self.weights.groups

    @property
    def masked(self) -> list[tuple[nn.Module, str]]:
        """Every masked ``(module, attr)`` (targets, and structured producers' biases)."""
        return self.weights.masked

    @property
    def current_sparsity(self) -> float:
        """The sparsity measured at the last mask update."""
        return self.progress.current_sparsity

    def prunable_parameters(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        """(name, effective weight) of every prunable weight: what ``params.sparsity`` counts."""
        body = body_of(model)
        return self.weights.prunable_parameters(model, body.adapter_modules() if body else ())

    def attach(self, model: nn.Module) -> None:
        """Select what is prunable and give it mask buffers (kept if a checkpoint already loaded some)."""
        body = body_of(model)
        adapters, own = (body.adapter_layers(), body.adapter_modules()) if body else ((), ())
        self.weights.attach(model, adapters, own, self.schedule.final_sparsity)
        self.criterion.check_targets(self.targets, KEY)

    def calibrate(self, source: Any, pl_module: nn.Module) -> None:
        """Hand a calibrated criterion (Wanda, SparseGPT) its batches (from ``source``: a Trainer or a datamodule) and the model's forward."""
        if self.criterion.needs_calibration:
            self.criterion.calibrate_with(model_forward(pl_module), calibration_batches(source, self.calibration["batches"], self.calibration["seed"]), pl_module)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Attach masks before DDP wraps the model; check that "best" can wait for the final sparsity."""
        if stage != "fit":
            return
        self.attach(pl_module)
        if self.best_at_final_sparsity:
            for cb in trainer.checkpoint_callbacks:
                if isinstance(cb, ModelCheckpoint) and cb.monitor and not isinstance(cb, EligibleModelCheckpoint):
                    raise ConfigError(
                        f"{KEY}.best_at_final_sparsity",
                        f"the checkpoint callback monitoring {cb.monitor!r} is a plain ModelCheckpoint, which would pick a 'best' "
                        f"checkpoint before the final sparsity; give it _target_: {EligibleModelCheckpoint.__module__}.EligibleModelCheckpoint "
                        "(as callbacks/model_checkpoint.yaml does) or set best_at_final_sparsity=false",
                    )

    def best_checkpoint_eligible(self, trainer: L.Trainer) -> bool:
        """Whether a monitored checkpoint may rank the current weights as "best" (asked by
        :class:`~peftlab.callbacks.eligible_checkpoint.EligibleModelCheckpoint`)."""
        return not self.best_at_final_sparsity or self.at_final_sparsity(trainer.global_step)

    def at_final_sparsity(self, step: int) -> bool:
        """Whether the schedule is finished (masks at final sparsity) after ``step`` optimizer steps."""
        return step >= self.schedule.end_step and self.progress.last_update_step >= self.schedule.end_step

    # ------------------------------------------------------------- hooks
    @staticmethod
    def _check_rewind(rewind, end) -> None:
        if type(rewind) is type(end) and rewind > end:
            raise ConfigError(f"{KEY}.rewind_step", f"must be <= end_step ({end}): weights are rewound once pruning ends; got {rewind}")

    @staticmethod
    def run_optimizer_steps(trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """The run's optimizer steps (``trainer.estimated_stepping_batches``; inf without a limit); the
        per-task-gradient path accumulates itself (the trainer gets 1 under manual optimisation)."""
        accumulate = 1 if pl_module.automatic_optimization else int(getattr(pl_module, "accumulate_grad_batches", 1) or 1)
        return planned_optimizer_steps(trainer, accumulate)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Turn fractions into steps of this run, check the schedule fits, apply the (restored) masks."""
        total = self.run_optimizer_steps(trainer, pl_module)
        self.schedule.resolve(total)
        moved = self.progress.follow_new_budget(self.schedule)
        if moved is not None:
            (before, now), sparsity = moved, self.progress.current_sparsity
            rank_zero_info(
                f"trainer budget changed since the checkpoint: {KEY} schedule now follows the new budget "
                f"(start_step {before['start_step']} -> {now['start_step']}, end_step {before['end_step']} -> {now['end_step']}); "
                f"sparsity stays at {sparsity:.3f} until the new schedule passes it"
            )
        if self.rewind_bound is not None:
            self.rewind_step = to_steps(self.rewind_bound, total, f"{KEY}.rewind_step")
            self._check_rewind(self.rewind_step, self.schedule.end_step)
        shortfall = self.schedule.iterative_shortfall()
        if shortfall > 0:
            rank_zero_warn(
                f"{KEY}: schedule=iterative adds amount={self.schedule.amount} every {self.schedule.every_n_steps} steps and reaches only "
                f"{self.schedule.final_sparsity - shortfall:.3f} before end_step={self.schedule.end_step}; the update at end_step jumps to "
                f"final_sparsity={self.schedule.final_sparsity} (raise amount or lower every_n_steps for an even ramp)"
            )
        if self.rewind_step == 0 and self.progress.rewind_weights is None and trainer.global_step == 0:
            self.progress.rewind_weights = self.weights.snapshot()
        self.weights.apply()
        self.mask_optimizer_state(trainer.optimizers)  # (a checkpoint written before gradients were masked)
        self._maybe_update(trainer, pl_module, trainer.global_step)  # e.g. one_shot at step 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        """Feed synchronised gradients to criteria that use them (movement)."""
        if self.criterion.uses_gradients:
            self.criterion.on_gradients(self.targets)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Re-zero pruned weights after the optimizer step; update masks on schedule steps."""
        self.weights.apply()
        step = trainer.global_step
        if self.rewind_step is not None and step == self.rewind_step and self.progress.rewind_weights is None:
            self.progress.rewind_weights = self.weights.snapshot()
        self._maybe_update(trainer, pl_module, step)

    def _maybe_update(self, trainer, pl_module, step: int) -> None:
        target = self.progress.due_target(self.schedule, step)
        if target is None:
            return
        progress = self.progress
        progress.final_applied = target >= self.schedule.final_sparsity
        if self.criterion.needs_calibration and trainer is not None:
            self.calibrate(trainer, pl_module)  # fresh batches through the current weights at every update
        with EvalMode(pl_module):  # calibration forwards (Wanda, SparseGPT) without dropout
            self.update_masks(target, step)
        if trainer is not None:
            self.mask_optimizer_state(trainer.optimizers)
        progress.last_update_step = step
        progress.history.append((step, progress.current_sparsity))
        if step >= self.schedule.end_step and progress.rewind_weights is not None:
            self.weights.rewind(progress.rewind_weights)
        if trainer is not None and rank_zero_only.rank == 0:
            for lg in trainer.loggers:  # straight to the loggers: no per-step self.log cost
                lg.log_metrics({"pruning/sparsity": progress.current_sparsity, "pruning/target_sparsity": target}, step=step)

    def update_masks(self, sparsity: float, step: int = 0) -> None:
        """Recompute every mask for ``sparsity`` and zero the pruned entries (usable without a Trainer)."""
        self.weights.update(sparsity, step)
        self.progress.current_sparsity = self.measured_sparsity()

    def mask_optimizer_state(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Zero the optimizer's per-entry state (Adam's moments, SGD's momentum) of pruned entries."""
        self.weights.mask_optimizer_state(optimizers)

    def measured_sparsity(self) -> float:
        """Zeros / entries over the prunable weights (structured: fraction of units removed)."""
        return self.weights.measured_sparsity()

    # ------------------------------------------------------------- state
    @property
    def state_key(self) -> str:
        """Distinct per criterion and selection, so e.g. a heads and an FFN callback keep separate states."""
        return self._generate_state_key(criterion=self.criterion.name, include=self.selection["include"], exclude=self.selection["exclude"])

    def state_dict(self) -> dict[str, Any]:
        """Schedule position, history, criterion state (movement scores) and the rewind snapshot."""
        return self.progress.state_dict(self.schedule, self.criterion)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (masks themselves come back with the model's buffers)."""
        self.progress.load_state_dict(state, self.criterion)

    # ------------------------------------------------------------ report
    def run_report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Per-layer sparsity, unit sparsity, schedule history, rank agreement and a bar-chart PNG."""
        unit = self.measured_sparsity() if self.criterion.structured and self.groups else None
        return schedule_report(
            self.prunable_parameters(model),
            self.criterion.name,
            self.schedule,
            self.progress.history,
            self.weights.masks(),
            run_dir,
            unit_sparsity=unit,
            write_plot=rank_zero_only.rank == 0,
        )
