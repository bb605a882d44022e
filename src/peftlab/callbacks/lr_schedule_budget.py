"""Resuming with another training budget: the learning-rate schedule follows the new budget.

Lightning restores a scheduler's whole state on resume, including the budget it was built for
(``CosineAnnealingLR.T_max``, ``OneCycleLR.total_steps``, ...), so ``train.py
trainer.max_epochs=2 ckpt_path=<1-epoch run>/last.ckpt`` would train its second epoch at the
end-of-schedule learning rate (0 for cosine) while the config says otherwise. Lightning has no
option for this, so this callback does it: when the checkpoint's budget (max_epochs, max_steps,
optimizer steps) differs from the run's, each scheduler is rebuilt as configured now and
replayed to the number of steps the checkpoint had taken — the learning rate is what a run
planned with the new budget has at this point — and one log line says so.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch.optim.lr_scheduler import ReduceLROnPlateau

from peftlab.errors import ConfigError


def training_budget(trainer: L.Trainer) -> dict[str, Any]:
    """What the run is planned for: epochs, steps and the optimizer steps Lightning estimates."""
    total = trainer.estimated_stepping_batches
    return {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps, "optimizer_steps": None if total == float("inf") else int(total)}


class LRScheduleFollowsBudget(L.Callback):
    """Adapt restored LR schedulers to a changed ``trainer.max_epochs`` / ``trainer.max_steps``.

    Works for every scheduler whose learning rate is a function of its step count (cosine,
    one-cycle, linear, step, sequential/chained, ...): the scheduler is reset to its freshly
    configured state (captured at ``on_fit_start``, before the checkpoint's optimizer and
    scheduler states are restored) and stepped as many times as the restored one had been.
    ``ReduceLROnPlateau`` depends on metrics, not on the budget, and is kept as restored. A
    scheduler that cannot be replayed to that point (e.g. one-cycle past its new total) is a
    :class:`~peftlab.errors.ConfigError` naming ``trainer.max_epochs``.
    """

    def __init__(self):
        self.budget: dict[str, Any] | None = None
        self.restored_budget: dict[str, Any] | None = None
        self.fresh: list[tuple[dict[str, Any], list[float]]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remember every scheduler as configured for this run (before a checkpoint overwrites it)."""
        self.fresh = [(copy.deepcopy(c.scheduler.state_dict()), [g.get("initial_lr", g["lr"]) for g in c.scheduler.optimizer.param_groups]) for c in trainer.lr_scheduler_configs]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After a restore with another budget: replay each scheduler under the new budget."""
        self.budget = training_budget(trainer)
        restored, self.restored_budget = self.restored_budget, None
        if restored is None and trainer.ckpt_path and self._schedulers_differ(trainer):
            what = "scheduler settings differ from the checkpoint's"  # a checkpoint written without this callback
        elif restored is None or restored == self.budget:
            return
        else:
            what = ", ".join(f"{k} {restored.get(k)} -> {v}" for k, v in self.budget.items() if restored.get(k) != v)
        for config, (state, initial_lrs) in zip(trainer.lr_scheduler_configs, self.fresh):
            scheduler = config.scheduler
            if isinstance(scheduler, ReduceLROnPlateau):
                continue
            groups = scheduler.optimizer.param_groups
            before, steps = [g["lr"] for g in groups], int(scheduler.last_epoch)
            scheduler.load_state_dict(copy.deepcopy(state))
            for group, lr in zip(groups, initial_lrs):
                group["lr"] = lr
            try:
                with warnings.catch_warnings():  # replaying: no optimizer.step() between these calls
                    warnings.simplefilter("ignore")
                    for _ in range(steps):
                        scheduler.step()
            except Exception as err:
                raise ConfigError(
                    "trainer.max_epochs",
                    f"the budget differs from the checkpoint's ({what}) and {type(scheduler).__name__} cannot continue from its "
                    f"step {steps} under the new one ({' '.join(str(err).split())[:160]}); resume with the checkpoint's trainer.max_epochs/max_steps",
                ) from None
            after = [g["lr"] for g in groups]
            rank_zero_info(f"trainer budget changed since the checkpoint ({what}): {type(scheduler).__name__} now follows the new budget; lr {_fmt(before)} -> {_fmt(after)} at scheduler step {steps}")

    def _schedulers_differ(self, trainer: L.Trainer) -> bool:
        """Whether a restored scheduler's settings (all but its position) differ from the configured ones."""
        position = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial"}
        for config, (state, _) in zip(trainer.lr_scheduler_configs, self.fresh):
            now = config.scheduler.state_dict()
            if any(now.get(k) != v for k, v in state.items() if k not in position and not callable(v)):
                return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """The budget the checkpoint's schedulers were built for."""
        return {"budget": self.budget}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore it (compared with the new run's budget at ``on_train_start``)."""
        self.restored_budget = state_dict.get("budget")


def _fmt(lrs: list[float]) -> str:
    return "/".join(f"{lr:.4g}" for lr in lrs)
