"""The learning-rate scheduler as the module hands it to Lightning: how often it steps, and the run's length.

Lightning steps a scheduler once per epoch or once per optimizer step (the ``interval`` of the
``lr_scheduler`` dict that ``configure_optimizers`` returns); ``model.scheduler_interval`` chooses.
A schedule measured in optimizer steps (``OneCycleLR``'s ``total_steps``) may leave its length
``null``: it gets the optimizer steps the run plans (Lightning's ``trainer.estimated_stepping_batches``,
which follows max_epochs, max_steps, limit_train_batches and accumulation), so one config fits
every budget (a fixed step count would break every other epoch budget; see DESIGN.md).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import lightning as L
import torch

from peftlab.errors import ConfigError
from peftlab.validators import check_choice

#: Values of ``model.scheduler_interval``: step the scheduler once per epoch or once per optimizer step.
INTERVALS = ("epoch", "step")


def check_scheduler_interval(value: Any) -> str:
    """``value`` if it is an interval Lightning knows, else a ConfigError naming ``model.scheduler_interval``."""
    return check_choice("model.scheduler_interval", value, INTERVALS)


def planned_optimizer_steps(trainer: L.Trainer, accumulate: int = 1) -> float:
    """The run's optimizer steps (inf without a limit). ``accumulate``: micro-batches per step that the
    module accumulates itself (the per-task-gradient path, where the Trainer is given 1 and its estimate
    counts micro-batches)."""
    total = trainer.estimated_stepping_batches
    if accumulate > 1 and trainer.max_epochs and trainer.max_epochs > 0:
        by_epochs = max(1, math.ceil(int(trainer.num_training_batches) / accumulate)) * trainer.max_epochs
        total = min(by_epochs, trainer.max_steps) if trainer.max_steps and trainer.max_steps > 0 else by_epochs
    return float(total)


def lr_scheduler_config(factory: Callable[..., Any], optimizer: torch.optim.Optimizer, trainer: L.Trainer, interval: str, accumulate: int = 1) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` dict: ``factory(optimizer)`` stepped every ``interval``; a ``total_steps``
    keyword left None (``model.scheduler.total_steps: null``) is filled with :func:`planned_optimizer_steps`."""
    keywords = getattr(factory, "keywords", None) or {}
    extra: dict[str, Any] = {}
    if "total_steps" in keywords and keywords["total_steps"] is None:
        if interval != "step":
            raise ConfigError("model.scheduler.total_steps", "null (the run's optimizer steps) needs model.scheduler_interval=step")
        total = planned_optimizer_steps(trainer, accumulate)
        if not math.isfinite(total):
            raise ConfigError("model.scheduler.total_steps", "null needs a finite run (trainer.max_epochs or trainer.max_steps); or set a number")
        extra["total_steps"] = max(1, int(total))
    return {"scheduler": factory(optimizer=optimizer, **extra), "interval": interval}
