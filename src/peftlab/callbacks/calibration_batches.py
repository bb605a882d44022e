"""Calibration batches for the activation-aware pruning criteria (Wanda, SparseGPT).

The first ``batches`` batches of a fresh training loader (the datamodule's own sampler, seeded
by ``data.seed``, so every run and every resume draws the same ones; under DDP each rank takes
its shard and the criteria sum their statistics over ranks), and the forward that runs one:
the whole model, in eval mode, without gradients, inputs moved to the model's device.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from peftlab.batch import call_body
from peftlab.errors import ConfigError
from peftlab.validators import check_int

KEY = "strategy.pruning.calibration"


def check_calibration(calibration: dict | None) -> dict:
    """``{"batches": n}`` with n >= 1 (defaults: 16 batches); a one-line error naming the key otherwise."""
    settings = {"batches": 16, **dict(calibration or {})}
    unknown = sorted(set(settings) - {"batches"})
    if unknown:
        raise ConfigError(f"{KEY}.{unknown[0]}", "unknown calibration setting; allowed: batches")
    check_int(f"{KEY}.batches", settings["batches"], minimum=1)
    return settings


def calibration_batches(source: Any, n: int) -> list[Any]:
    """The first ``n`` training batches of ``source``: a datamodule, a Trainer (its datamodule, else its train loader) or a loader."""
    datamodule = getattr(source, "datamodule", None) if isinstance(source, L.Trainer) else source
    if hasattr(datamodule, "train_dataloader") and callable(datamodule.train_dataloader):
        loader = datamodule.train_dataloader()
    else:
        loader = getattr(source, "train_dataloader", None) if isinstance(source, L.Trainer) else source
    if loader is None:
        raise ConfigError(KEY, "the calibration criteria need training data: no datamodule or train dataloader")
    return list(itertools.islice(iter(loader), n))


def model_forward(pl_module: torch.nn.Module) -> Callable[[Any], Any]:
    """``run(batch)``: the model's body and heads on one batch (the caller sets eval mode and no_grad)."""

    def run(batch: Any) -> Any:
        batch = move_data_to_device(batch, next(pl_module.parameters()).device)
        if isinstance(batch, dict) and "inputs" in batch:  # the batch contract (peftlab.batch)
            if hasattr(pl_module, "body") and hasattr(pl_module, "heads"):  # a MultiTaskModule: route rows as training does
                return pl_module.heads(call_body(pl_module.body, batch["inputs"], batch.get("task_mask")))
            return pl_module(batch["inputs"])
        return pl_module(batch[0] if isinstance(batch, (list, tuple)) else batch)

    return run


class EvalMode:
    """``with EvalMode(module):`` eval mode (no dropout) inside, the previous mode restored after."""

    def __init__(self, module: torch.nn.Module | None):
        self.module, self.was_training = module, module.training if module is not None else False

    def __enter__(self):
        if self.module is not None:
            self.module.eval()
        return self.module

    def __exit__(self, *exc):
        if self.module is not None:
            self.module.train(self.was_training)
        return False
