"""Turn a composed config into objects: datamodule, model, callbacks, loggers, trainer.

Shared by training and evaluation so both build exactly the same model from the same config.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from peftlab.errors import ConfigError


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """The datamodule of ``cfg.data``, already set up (data loaded and split)."""
    datamodule = instantiate(cfg.data, _recursive_=True)
    datamodule.setup()
    return datamodule


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """The model of ``cfg.model`` with the sharing, weighting and clipping of ``cfg.strategy``."""
    strategy = cfg.strategy
    return instantiate(
        cfg.model,
        tasks=datamodule.tasks,
        input_shape=list(datamodule.input_shape),
        sharing=instantiate(strategy.sharing),
        weighting=instantiate(strategy.weighting),
        clipping=instantiate(strategy.clipping),
        _convert_="object",  # hand the TaskSpec dataclasses over as they are
    )


def build_strategy_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """Callbacks the strategy brings (pruning schedules); empty when ``strategy/pruning=none``."""
    pruning = cfg.strategy.get("pruning")
    if not pruning or "_target_" not in pruning:
        return []
    return [instantiate(pruning)]


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """Every callback named under ``cfg.callbacks`` (entries set to null are skipped)."""
    return [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]


def build_loggers(cfg: DictConfig) -> list[Any]:
    """Every logger named under ``cfg.logger``; W&B runs offline when no API key is configured."""
    loggers = []
    for name, lg in (cfg.get("logger") or {}).items():
        if not lg or "_target_" not in lg:
            continue
        if lg._target_.endswith("WandbLogger") and lg.get("offline") is None:
            offline = not (os.environ.get("WANDB_API_KEY") or _wandb_netrc_login())
            lg = OmegaConf.merge(lg, {"offline": offline})
            if offline:
                print(f"logger.{name}.offline=null and no W&B API key found: logging offline (sync later with `wandb sync`)")
        loggers.append(instantiate(lg))
    return loggers


def _wandb_netrc_login() -> bool:
    netrc = os.path.expanduser("~/.netrc")
    return os.path.isfile(netrc) and "api.wandb.ai" in open(netrc).read()


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], loggers: list[Any]) -> L.Trainer:
    """The Lightning trainer of ``cfg.trainer``."""
    if cfg.trainer.get("gradient_clip_val") is not None:
        raise ConfigError("trainer.gradient_clip_val", "must stay null; choose clipping with strategy/clipping=<none|norm|value|agc|per_task>")
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
