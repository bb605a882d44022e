"""Calibration batches for the activation-aware pruning criteria (Wanda, SparseGPT).

The first ``batches`` batches of a fresh training loader (the datamodule's own sampler, seeded
by ``data.seed``, so every run and every resume draws the same ones; under DDP each rank takes
its shard and the criteria sum their statistics over ranks), and the forward that runs one:
the whole model, in eval mode, without gradients, inputs moved to the model's device. With
``calibration.seed`` the same sampler is reshuffled with that seed instead of ``data.seed``: a
different, reproducible set of batches (the calibration-data seeds of the papers' tables),
without touching the training order.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from peftlab.batch import call_body
from peftlab.errors import ConfigError
from peftlab.validators import check_int

KEY = "strategy.pruning.calibration"


def check_calibration(calibration: dict | None) -> dict:
    """``{"batches": n, "seed": s}`` with n >= 1 and s null or an int >= 0 (defaults: 16 batches, seed null); a one-line error naming the key otherwise."""
    settings = {"batches": 16, "seed": None, **dict(calibration or {})}
    unknown = sorted(set(settings) - {"batches", "seed"})
    if unknown:
        raise ConfigError(f"{KEY}.{unknown[0]}", "unknown calibration setting; allowed: batches, seed")
    check_int(f"{KEY}.batches", settings["batches"], minimum=1)
    if settings["seed"] is not None:
        check_int(f"{KEY}.seed", settings["seed"], minimum=0)
    return settings


def calibration_batches(source: Any, n: int, seed: int | None = None) -> list[Any]:
    """The first ``n`` training batches of ``source``: a datamodule, a Trainer (its datamodule, else its train loader) or a loader.

    ``seed``: the loader's sampler reshuffled with this seed (a copy: the training order is untouched); None: as it is.
    """
    datamodule = getattr(source, "datamodule", None) if isinstance(source, L.Trainer) else source
    if hasattr(datamodule, "train_dataloader") and callable(datamodule.train_dataloader):
        loader = datamodule.train_dataloader()
    else:
        loader = getattr(source, "train_dataloader", None) if isinstance(source, L.Trainer) else source
    if loader is None:
        raise ConfigError(KEY, "the calibration criteria need training data: no datamodule or train dataloader")
    if seed is not None:
        loader = reseeded(loader, seed)
    return list(itertools.islice(iter(loader), n))


def reseeded(loader: Any, seed: int) -> DataLoader:
    """A loader over the same rows and collation whose batch sampler is a copy of ``loader``'s with ``seed`` (epoch 0)."""
    sampler = getattr(loader, "sampler", None)
    if not hasattr(sampler, "seed") or not hasattr(sampler, "epoch"):  # the datamodule's samplers (peftlab.data.batching) have both
        raise ConfigError(f"{KEY}.seed", f"needs the datamodule's seeded training sampler; this loader's sampler is {type(sampler).__name__}: set it to null")
    sampler = copy.copy(sampler)
    sampler.seed, sampler.epoch = seed, 0
    # batch_size=None: each sampler item is already a list of indices, as in the datamodule's loaders
    return DataLoader(loader.dataset, sampler=sampler, batch_size=None, collate_fn=loader.collate_fn, num_workers=0)


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
