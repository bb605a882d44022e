"""The pruning callback: selects prunable weights, follows a schedule in optimizer steps (or
fractions of the run), keeps masks as buffers, checkpoints its own state, and reports sparsity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.criteria import Criterion, Magnitude
from peftlab.pruning.criteria.structured import units_to_drop
from peftlab.pruning.masks import apply_masks, attach_mask, get_mask, mask_gradients
from peftlab.pruning.report import ranks_agree, sparsity_report, write_sparsity_plot
from peftlab.pruning.schedules import Schedule, check_step_or_fraction, to_steps
from peftlab.pruning.selection import Target, select_targets
from peftlab.pruning.unit_groups import UnitGroup, find_groups
from peftlab.callbacks.eligible_checkpoint import EligibleModelCheckpoint

KEY = "strategy.pruning"


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
    ):
        self.criterion = criterion or Magnitude()
        self.schedule = Schedule(schedule, start_step, end_step, every_n_steps, initial_sparsity, final_sparsity, amount, KEY)
        self.selection = dict(scope=scope, module_types=list(module_types), include=include, exclude=exclude, parameters=list(parameters))
        if rewind_step is not None:
            check_step_or_fraction(f"{KEY}.rewind_step", rewind_step)
            self._check_rewind(rewind_step, self.schedule.end_step)
        self.rewind_step = self.rewind_bound = rewind_step
        self.best_at_final_sparsity = best_at_final_sparsity
        # state (checkpointed)
        self.last_update_step = -1
        self.restored_schedule: dict[str, int] | None = None  # the checkpoint's resolved start/end steps
        self.resume_floor = -1.0  # after a resume under another budget: sparsity never goes below this
        self.final_applied = False  # masks computed for final_sparsity (checkpointed)
        self.current_sparsity = 0.0
        self.history: list[tuple[int, float]] = []
        self.rewind_weights: list[torch.Tensor] | None = None
        # wiring (rebuilt on setup)
        self.targets: list[Target] = []
        self.groups: list[UnitGroup] = []
        self.masked: list[tuple[nn.Module, str]] = []
        self.gradient_hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._covered: set[str] | None = None  # structured, include null: the selected weights unit groups cover
        self._lora_gates: list = []

    # ------------------------------------------------------------ wiring
    def prunable_parameters(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        """(name, effective weight) of every prunable weight: what ``params.sparsity`` counts."""
        out = []
        for t in select_targets(model, key=KEY, **self.selection):
            if self._covered is not None and t.name not in self._covered:
                continue
            mask = get_mask(t.module, t.attr)
            out.append((t.name, t.tensor.detach() * mask if mask is not None else t.tensor.detach()))
        return out

    def attach(self, model: nn.Module) -> None:
        """Select what is prunable and give it mask buffers (kept if a checkpoint already loaded some)."""
        if self.criterion.structured and not find_groups(model, self.criterion.unit):
            try:  # the model has no units of that kind: say so, naming the selected layer types
                self.targets = select_targets(model, key=KEY, **self.selection)
            except ConfigError:
                self.targets = []
            self._groups(model)  # raises
        self.targets = select_targets(model, key=KEY, **self.selection)
        if self.criterion.structured:
            self.groups = self._groups(model)  # may narrow self.targets (include null)
        pairs: list[tuple[nn.Module, str]] = [(t.module, t.attr) for t in self.targets]
        if self.criterion.structured:
            for g in self.groups:
                units_to_drop(g, self.schedule.final_sparsity)  # e.g. all heads of a layer: one-line error now, not mid-run
                pairs += [(lin, "weight") for _, lin in g.producers] + [(lin, "bias") for _, lin in g.producers if lin.bias is not None]
        seen, self.masked = set(), []
        for handle in self.gradient_hooks:  # attached again (a second fit): one hook per parameter
            handle.remove()
        self.gradient_hooks = []
        for module, attr in pairs:
            if (id(module), attr) not in seen:
                seen.add((id(module), attr))
                attach_mask(module, attr)
                self.masked.append((module, attr))
                handle = mask_gradients(module, attr)
                if handle is not None:
                    self.gradient_hooks.append(handle)
        for handle in self._lora_gates:
            handle.remove()
        if any(n.rsplit(".", 1)[-1] == "lora_A" for n, _ in model.named_modules()):  # peft LoRA present
            from peftlab.pruning.lora_merge import gate_pruned_lora_rows

            self._lora_gates = gate_pruned_lora_rows(model)  # an adapter's update of a pruned unit is zeroed too

    def _groups(self, model: nn.Module) -> list[UnitGroup]:
        """Unit groups whose producers are all selected; selected layers no group covers are an error."""
        unit = self.criterion.unit
        selected = {t.name: t for t in self.targets}
        groups = [g for g in find_groups(model, unit) if all(f"{n}.weight" in selected for n, _ in g.producers)]
        covered = {f"{n}.weight" for g in groups for n, _ in g.producers + g.consumers}
        bad = [f"{t.name} ({type(t.module).__name__})" for t in self.targets if t.name not in covered or not isinstance(t.module, nn.Linear)]
        if groups and bad and self.selection["include"] is None:
            # no include given: prune the units found (BERT FFNs: intermediate.dense rows + output.dense
            # columns) and leave the layers no group covers (attention, pooler) dense
            self.targets = [t for t in self.targets if t.name in covered and isinstance(t.module, nn.Linear)]
            self._covered, bad = {t.name for t in self.targets}, []
        if not groups or bad:
            what = "BERT-style self-attention (query/key/value + output.dense)" if unit == "heads" else "nn.Linear layers followed by another nn.Linear (or task heads) through relu/gelu/tanh/dropout, or BERT FFNs"
            raise ConfigError(
                f"{KEY}.criterion",
                f"structured pruning of {unit} handles {what}; it can't handle {', '.join(bad[:3]) or 'any selected layer'} "
                f"— narrow {KEY}.include/module_types or use an unstructured criterion",
            )
        return groups

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
        return step >= self.schedule.end_step and self.last_update_step >= self.schedule.end_step

    # ------------------------------------------------------------- hooks
    @staticmethod
    def _check_rewind(rewind, end) -> None:
        if type(rewind) is type(end) and rewind > end:
            raise ConfigError(f"{KEY}.rewind_step", f"must be <= end_step ({end}): weights are rewound once pruning ends; got {rewind}")

    @staticmethod
    def run_optimizer_steps(trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """The run's optimizer steps (``trainer.estimated_stepping_batches``; inf without a limit)."""
        total = trainer.estimated_stepping_batches
        # the per-task-gradient path accumulates itself (pl_module.accumulate_grad_batches; the
        # trainer gets 1 since Lightning forbids accumulation under manual optimisation), so
        # Lightning's estimate counts micro-batches there: count optimizer steps instead
        accumulate = 1 if pl_module.automatic_optimization else int(getattr(pl_module, "accumulate_grad_batches", 1) or 1)
        if accumulate > 1 and trainer.max_epochs and trainer.max_epochs > 0:
            steps_per_epoch = max(1, math.ceil(int(trainer.num_training_batches) / accumulate))
            by_epochs = steps_per_epoch * trainer.max_epochs
            total = min(by_epochs, trainer.max_steps) if trainer.max_steps and trainer.max_steps > 0 else by_epochs
        return float(total)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Turn fractions into steps of this run, check the schedule fits, apply the (restored) masks."""
        total = self.run_optimizer_steps(trainer, pl_module)
        self.schedule.resolve(total)
        self._follow_new_budget()
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
        if self.rewind_step == 0 and self.rewind_weights is None and trainer.global_step == 0:
            self.rewind_weights = [t.tensor.detach().clone() for t in self.targets]
        apply_masks(self.masked)
        self.mask_optimizer_state(trainer.optimizers)  # (a checkpoint written before gradients were masked)
        self._maybe_update(trainer, pl_module, trainer.global_step)  # e.g. one_shot at step 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        """Feed synchronised gradients to criteria that use them (movement)."""
        if self.criterion.uses_gradients:
            self.criterion.on_gradients(self.targets)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Re-zero pruned weights after the optimizer step; update masks on schedule steps."""
        apply_masks(self.masked)
        step = trainer.global_step
        if self.rewind_step is not None and step == self.rewind_step and self.rewind_weights is None:
            self.rewind_weights = [t.tensor.detach().clone() for t in self.targets]
        self._maybe_update(trainer, pl_module, step)

    def _follow_new_budget(self) -> None:
        """After a resume: say so when the run's budget moved the schedule (fractions of the run re-resolved).

        The schedule continues from where training stands under the new budget; a target below the
        sparsity already reached (a longer run moves end_step later) keeps the masks as they are
        instead of reviving pruned weights, until the new schedule passes that sparsity.
        """
        restored, self.restored_schedule = self.restored_schedule, None
        now = {"start_step": self.schedule.start_step, "end_step": self.schedule.end_step}
        if restored is None or restored == now:
            return
        self.resume_floor = self.current_sparsity
        rank_zero_info(
            f"trainer budget changed since the checkpoint: {KEY} schedule now follows the new budget "
            f"(start_step {restored['start_step']} -> {now['start_step']}, end_step {restored['end_step']} -> {now['end_step']}); "
            f"sparsity stays at {self.current_sparsity:.3f} until the new schedule passes it"
        )

    def _maybe_update(self, trainer, pl_module, step: int) -> None:
        # resumed under a shorter budget, past the new end_step: go to final sparsity now
        overdue = step > self.schedule.end_step and not self.final_applied
        if step <= self.last_update_step or not (self.schedule.is_update_step(step) or overdue):
            return
        target = self.schedule.sparsity_at(step)
        if target <= self.resume_floor and target < self.schedule.final_sparsity:
            return  # resumed under a longer budget: never un-prune (see _follow_new_budget)
        self.final_applied = target >= self.schedule.final_sparsity
        self.update_masks(target, step)
        if trainer is not None:
            self.mask_optimizer_state(trainer.optimizers)
        self.last_update_step = step
        self.history.append((step, self.current_sparsity))
        if step >= self.schedule.end_step and self.rewind_weights is not None:
            with torch.no_grad():
                for t, w in zip(self.targets, self.rewind_weights):
                    t.tensor.copy_(w * get_mask(t.module, t.attr))
        if trainer is not None and rank_zero_only.rank == 0:
            for lg in trainer.loggers:  # straight to the loggers: no per-step self.log cost
                lg.log_metrics({"pruning/sparsity": self.current_sparsity, "pruning/target_sparsity": target}, step=step)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int = 0) -> None:
        """Recompute every mask for ``sparsity`` and zero the pruned entries (usable without a Trainer)."""
        if self.criterion.structured:
            new = self._structured_masks(sparsity)
            for (module, attr), mask in new.items():
                get_mask(module, attr).copy_(mask)
        else:
            for t, mask in zip(self.targets, self.criterion.compute_masks(self.targets, sparsity, step)):
                get_mask(t.module, t.attr).copy_(mask)
        apply_masks(self.masked)
        self.current_sparsity = self.measured_sparsity()

    @torch.no_grad()
    def mask_optimizer_state(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Zero the optimizer's per-entry state (Adam's moments, SGD's momentum) of pruned entries.

        Gradients of pruned entries are masked, so their state stays zero once it is zero; this
        clears what a weight accumulated before it was pruned, so a pruned weight gets no
        update from its old momentum either.
        """
        for optimizer in optimizers:
            for module, attr in self.masked:
                param = getattr(module, attr)
                state = optimizer.state.get(param, {})
                for value in state.values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value.mul_(get_mask(module, attr).to(value.dtype))

    def _structured_masks(self, sparsity: float) -> dict[tuple[nn.Module, str], torch.Tensor]:
        current = [get_mask(g.producers[0][1], "weight").reshape(g.n_units, -1).amax(1) for g in self.groups]
        keeps = self.criterion.unit_keep(self.groups, sparsity, current)
        selected = {id(t.module) for t in self.targets if t.attr == "weight"}
        new: dict[Any, torch.Tensor] = {}

        def mul(module, attr, factor):
            key = (module, attr)
            base = new.get(key, torch.ones_like(getattr(module, attr)))
            new[key] = base * factor

        for g, keep in zip(self.groups, keeps):
            rows = g.row_keep(keep)
            for _, lin in g.producers:
                mul(lin, "weight", rows[:, None])
                if lin.bias is not None:
                    mul(lin, "bias", rows)
            for _, lin in g.consumers:
                if id(lin) in selected:
                    mul(lin, "weight", rows[None, :])
        return {k: v for k, v in new.items() if get_mask(*k) is not None}

    def measured_sparsity(self) -> float:
        """Zeros / entries over the prunable weights (structured: fraction of units removed)."""
        if self.criterion.structured:
            units = [get_mask(g.producers[0][1], "weight").reshape(g.n_units, -1).amax(1) for g in self.groups]
            return float(sum(int((u == 0).sum()) for u in units) / max(1, sum(u.numel() for u in units)))
        zeros = sum(int((t.tensor == 0).sum()) for t in self.targets)
        return zeros / max(1, sum(t.tensor.numel() for t in self.targets))

    # ------------------------------------------------------------- state
    @property
    def state_key(self) -> str:
        """Distinct per criterion and selection, so e.g. a heads and an FFN callback keep separate states."""
        return self._generate_state_key(criterion=self.criterion.name, include=self.selection["include"], exclude=self.selection["exclude"])

    def state_dict(self) -> dict[str, Any]:
        """Schedule position, history, criterion state (movement scores) and the rewind snapshot."""
        return {
            "last_update_step": self.last_update_step,
            "current_sparsity": self.current_sparsity,
            "history": list(self.history),
            "final_applied": self.final_applied,
            "resume_floor": self.resume_floor,
            "schedule": {"start_step": self.schedule.start_step, "end_step": self.schedule.end_step},
            "criterion": self.criterion.state_dict(),
            "rewind_weights": self.rewind_weights,
            # the global RNG (dropout) is checkpointed by peftlab.callbacks.rng_state.RngStateInCheckpoint,
            # which train.py always adds; the random criterion needs none (seeded by seed and step)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (masks themselves come back with the model's buffers)."""
        self.last_update_step = state["last_update_step"]
        self.current_sparsity = state["current_sparsity"]
        self.history = [tuple(h) for h in state["history"]]
        self.criterion.load_state_dict(state["criterion"])
        self.rewind_weights = state.get("rewind_weights")
        self.restored_schedule = state.get("schedule")
        self.resume_floor = state.get("resume_floor", -1.0)
        self.final_applied = state.get("final_applied", self.last_update_step >= state["schedule"]["end_step"])

    def _resolved(self) -> bool:
        return all(isinstance(v, int) for v in (self.schedule.start_step, self.schedule.end_step, self.schedule.every_n_steps))

    # ------------------------------------------------------------ report
    def run_report(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Per-layer sparsity, unit sparsity, schedule history, rank agreement and a bar-chart PNG."""
        report = sparsity_report(self.prunable_parameters(model))
        if self.criterion.structured and self.groups:
            report["unit_sparsity"] = self.measured_sparsity()
        report.update(
            criterion=self.criterion.name,
            schedule=self.schedule.kind,
            final_sparsity_target=self.schedule.final_sparsity,
            history=[list(h) for h in self.history],
            ranks_agree=ranks_agree([get_mask(m, a) for m, a in self.masked]),
        )
        plot = Path(run_dir) / "sparsity_per_layer.png"
        if rank_zero_only.rank == 0:
            last = max([self.schedule.end_step] + [h[0] for h in self.history])
            target = [(t, self.schedule.sparsity_at(t)) for t in range(0, last + 1)] if self._resolved() else None
            write_sparsity_plot(report["layers"], plot, history=self.history, target=target)
        return {"pruning": report, "sparsity_plot": str(plot)}
