"""Every config group option composes, and the objects it names instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from peftlab.builders import build_callbacks, build_datamodule, build_loggers, build_model, build_strategy_callbacks
from peftlab.cli import CONFIG_DIR


def options(group: str) -> list[str]:
    """Every option of a config group, read from the configs folder (new options are covered automatically)."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def test_groups_have_the_documented_options():
    assert {"share", "separate"} <= set(options("strategy"))
    assert {"default", "cpu", "gpu", "ddp", "ddp_sim"} <= set(options("trainer"))
    assert {"csv", "tensorboard", "wandb", "many"} <= set(options("logger"))
    assert {"fast_dev_run", "overfit", "limit_batches"} <= set(options("debug"))
    assert {"equal", "fixed"} <= set(options("strategy/weighting"))
    assert {"none", "norm"} <= set(options("strategy/clipping"))
    assert {"hard", "separate"} <= set(options("strategy/sharing"))


# recipes written for transformers name transformer modules: point them at the MLP's linear layers
ON_THE_MLP = {"lora_share": ["strategy.sharing.adapter.target_modules=[net.1,net.4]"]}


@pytest.mark.parametrize("strategy", options("strategy"))
def test_each_strategy_builds_a_model(make_cfg, strategy):
    cfg = make_cfg(f"strategy={strategy}", *ON_THE_MLP.get(strategy, []))
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    out = model(dm.splits["train"].x[:4])
    assert {k: tuple(v.shape) for k, v in out.items()} == {"digit": (4, 10), "parity": (4, 2), "high": (4, 2)}
    build_strategy_callbacks(cfg)


@pytest.mark.parametrize("group", ["strategy/weighting", "strategy/clipping", "strategy/sharing", "strategy/pruning"])
def test_each_strategy_sub_option_instantiates(make_cfg, group):
    for option in options(group):
        cfg = make_cfg(f"{group}={option}")
        node = cfg.strategy[group.split("/")[1]]
        if "_target_" in node:
            built = instantiate(node)
            assert type(built).__name__ == node._target_.rsplit(".", 1)[1], f"{group}={option}"


@pytest.mark.parametrize("data", options("data"))
def test_each_data_option_composes(make_cfg, data):
    cfg = make_cfg(f"data={data}")
    assert len(cfg.data.tasks) >= 1
    if data.startswith("digits"):
        dm = build_datamodule(cfg)
        assert dm.input_shape == (64,)


@pytest.mark.parametrize("trainer", options("trainer"))
def test_each_trainer_option_composes(make_cfg, trainer):
    cfg = make_cfg(f"trainer={trainer}")
    assert cfg.trainer.use_distributed_sampler is False
    if cfg.trainer.accelerator == "cpu":
        instantiate(cfg.trainer, logger=False, callbacks=[])


@pytest.mark.parametrize("logger", options("logger"))
def test_each_logger_option_instantiates(make_cfg, logger, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = build_loggers(make_cfg(f"logger={logger}"))
    assert len(loggers) == (3 if logger == "many" else 1)


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_each_callbacks_option_instantiates(make_cfg, callbacks):
    built = build_callbacks(make_cfg(f"callbacks={callbacks}"))
    assert built, callbacks
    if callbacks in ("default", "early_stopping", "none"):  # the bundles keep the checkpoints metrics.json needs
        assert any(isinstance(c, ModelCheckpoint) and c.monitor for c in built) and any(isinstance(c, ModelCheckpoint) and not c.monitor for c in built)


@pytest.mark.parametrize("option", options("debug") + [f"experiment={e}" for e in options("experiment")])
def test_debug_and_experiment_options_compose(make_cfg, base_cfg, option):
    cfg = make_cfg(option if option.startswith("experiment=") else f"debug={option}")
    base = base_cfg
    changed = [k for k in ("trainer", "data", "model", "strategy") if OmegaConf.to_container(cfg[k]) != OmegaConf.to_container(base[k])]
    assert changed, f"{option} changes nothing in trainer/data/model/strategy"
