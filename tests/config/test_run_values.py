"""Run-level values (seed, epoch/step budget, validation interval) and optimizer settings: one ConfigError naming the key."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf

from peftlab.errors import ConfigError
from peftlab.models import MLPBackbone, MultiTaskModule
from peftlab.tasks import TaskSpec
from peftlab.train import check_run_values


def cfg(**values):
    trainer = {k: v for k, v in values.items() if k != "seed"}
    return OmegaConf.create({"seed": values.get("seed", 42), "trainer": {"max_epochs": 3, "max_steps": -1, "check_val_every_n_epoch": 1, **trainer}})


@pytest.mark.parametrize(
    "values, key",
    [
        ({"max_epochs": 0}, "trainer.max_epochs"),
        ({"max_epochs": -1}, "trainer.max_epochs"),
        ({"max_steps": 0}, "trainer.max_steps"),
        ({"check_val_every_n_epoch": 0}, "trainer.check_val_every_n_epoch"),
        ({"seed": "abc"}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_run_values_name_their_key(values, key):
    with pytest.raises(ConfigError) as err:
        check_run_values(cfg(**values))
    assert err.value.key == key


@pytest.mark.parametrize("values", [{}, {"seed": 0}, {"seed": 2**32 - 1}, {"seed": None}, {"max_steps": 50}, {"check_val_every_n_epoch": None}, {"max_epochs": None, "max_steps": 10}])
def test_good_run_values_pass(values):
    check_run_values(cfg(**values))


TASKS = [TaskSpec(name="a", label="a", num_classes=2)]


def module(**optimizer) -> MultiTaskModule:
    return MultiTaskModule(functools.partial(MLPBackbone, input_shape=[2], hidden_dims=[4]), TASKS, optimizer=functools.partial(torch.optim.AdamW, **optimizer))


@pytest.mark.parametrize(
    "optimizer, key",
    [({"lr": -1.0}, "model.optimizer.lr"), ({"lr": float("nan")}, "model.optimizer.lr"), ({"lr": "fast"}, "model.optimizer.lr"), ({"lr": 1e-3, "weight_decay": -1.0}, "model.optimizer.weight_decay")],
)
def test_bad_optimizer_settings_name_their_key(optimizer, key):
    with pytest.raises(ConfigError) as err:
        module(**optimizer)
    assert err.value.key == key


def test_good_optimizer_settings_pass():
    assert module(lr=0.0, weight_decay=0.0).configure_optimizers().defaults["lr"] == 0.0
