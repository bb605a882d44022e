"""Turn a composed config into objects: datamodule, model, callbacks, loggers, trainer.

Shared by training and evaluation so both build exactly the same model from the same config.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from peftlab.callbacks.slurm_requeue import lightning_slurm_plugins
from peftlab.checkpoints.atomic_checkpoint_io import AtomicCheckpointIO
from peftlab.errors import ConfigError
from peftlab.reporting.resumed_logs import ResumableCSVLogger, checkpoint_step, tensorboard_resume_kwargs


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """The datamodule of ``cfg.data``, already set up (data loaded and split).

    ``data.input_shape`` (what the model is built from) is checked against the loaded data.
    """
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    declared = data_cfg.pop("input_shape", None)
    datamodule = instantiate(OmegaConf.create(data_cfg), _recursive_=True)
    datamodule.setup()
    actual = getattr(datamodule, "input_shape", None)
    if declared is not None and actual is not None and tuple(declared) != tuple(actual):
        raise ConfigError("data.input_shape", f"is {list(declared)} but the data's samples have shape {list(actual)}; set data.input_shape={list(actual)}")
    return datamodule


# Keys of ``cfg.model`` that are settings other keys interpolate (``model.name_or_path`` feeds the
# backbone and the data's tokenizer; model=hf_causal_lm's config and init_seed feed its backbone) or that act on
# the strategy, not constructor arguments.
MODEL_SETTINGS = ("name_or_path", "pooling", "trust_remote_code", "gradient_checkpointing", "dtype", "weighting_mode", "config", "init_seed")


def build_model(cfg: DictConfig) -> L.LightningModule:
    """The model of ``cfg.model`` (tasks from ``${data.tasks}``) with the sharing, weighting and clipping of ``cfg.strategy``.

    Built from the config alone, never from a loaded datamodule. ``model.weighting_mode``, when
    set (``model=hf`` sets ``representation``), replaces ``strategy.weighting.mode`` of the
    methods that have one and allow it (gradient-based methods and GradNorm work on the pooled
    features; methods defined on parameters only, MoCo, DB-MTL, ExcessMTL, keep ``params``).
    """
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    settings = {key: model_cfg.pop(key) for key in MODEL_SETTINGS if key in model_cfg}
    strategy = cfg.strategy
    mode = settings.get("weighting_mode")
    allowed = mode and "mode" in strategy.weighting and mode in get_class(strategy.weighting._target_).MODES
    weighting = instantiate(strategy.weighting, **({"mode": mode} if allowed else {}))
    return instantiate(
        OmegaConf.create(model_cfg),
        sharing=instantiate(strategy.sharing),
        weighting=weighting,
        clipping=instantiate(strategy.clipping),
        _convert_="object",  # plain dicts and lists for the task specs and the peft config
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
    """Every logger named under ``cfg.logger``; W&B runs offline when no API key is configured.

    Resuming (``ckpt_path``) into a directory a logger already wrote, the CSV rows and TensorBoard
    events logged before the checkpoint's step are kept and later ones dropped (reporting/resumed_logs.py).
    """
    loggers = []
    step = checkpoint_step(cfg.get("ckpt_path"))
    for name, lg in (cfg.get("logger") or {}).items():
        if not lg or "_target_" not in lg:
            continue
        if lg._target_ == "lightning.pytorch.loggers.TensorBoardLogger":
            purge = tensorboard_resume_kwargs(lg.save_dir, lg.get("name", "lightning_logs"), lg.get("version"), step)
            lg = OmegaConf.create({**OmegaConf.to_container(lg, resolve=True), **purge})  # (a key the group does not declare)
        if lg._target_.endswith("WandbLogger") and lg.get("offline") is None:
            offline = not (os.environ.get("WANDB_API_KEY") or _wandb_netrc_login())
            lg = OmegaConf.merge(lg, {"offline": offline})
            if offline:
                print(f"logger.{name}.offline=null and no W&B API key found: logging offline (sync later with `wandb sync`)")
        loggers.append(instantiate(lg))
        if isinstance(loggers[-1], ResumableCSVLogger) and step is not None:
            loggers[-1].resume_at(step)
    return loggers


def _wandb_netrc_login() -> bool:
    netrc = os.path.expanduser("~/.netrc")
    return os.path.isfile(netrc) and "api.wandb.ai" in open(netrc).read()


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], loggers: list[Any], model: L.LightningModule | None = None) -> L.Trainer:
    """The Lightning trainer of ``cfg.trainer`` (for ``model``, when given)."""
    if cfg.trainer.get("gradient_clip_val") is not None:
        raise ConfigError("trainer.gradient_clip_val", "must stay null; choose clipping with strategy/clipping=<none|norm|value|agc|per_task>")
    check_accelerator(cfg)
    for key in ("max_epochs", "min_epochs", "max_steps", "accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps"):
        value = cfg.trainer.get(key)  # Lightning asserts on some of these (a traceback, no key named)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"trainer.{key}", f"must be an integer; got {value!r}")
    # checkpoints go to a temp file and are renamed: a job killed mid-write keeps its previous last.ckpt
    # under SLURM, USR1 is handled at a step boundary by callbacks/slurm_requeue.py, not inside Lightning's handler
    overrides: dict[str, Any] = {"plugins": [AtomicCheckpointIO(), *lightning_slurm_plugins()]}
    strategy = popen_strategy(cfg)  # ddp_spawn/fork would lose test metrics and reports in the children
    if strategy is not None:
        overrides["strategy"] = strategy
    if model is not None and not model.automatic_optimization:
        # Lightning refuses Trainer(accumulate_grad_batches>1) under manual optimisation. The
        # module's per-task path accumulates itself (model.accumulate_grad_batches, wired from the
        # same trainer.accumulate_grad_batches key), so the Trainer is given 1 on that path.
        overrides["accumulate_grad_batches"] = 1
    if cfg.trainer.get("enable_progress_bar") is False:
        # the user's switch wins over callbacks.progress_bar (Lightning refuses the pair with a traceback)
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def check_accelerator(cfg: DictConfig) -> None:
    """ConfigError naming ``trainer.accelerator`` when it asks for a GPU this process cannot see."""
    accelerator = str(cfg.trainer.get("accelerator", "cpu")).lower()
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    mps = accelerator == "gpu" and torch.backends.mps.is_available()  # Lightning's "gpu" is Apple's MPS on a Mac
    if not (torch.cuda.is_available() or mps):
        raise ConfigError("trainer.accelerator", f"{accelerator}, but this process sees no GPU (torch.cuda.is_available() is False); use trainer=cpu (or trainer.accelerator=cpu)")


# Lightning distribution strategies that start their worker processes from inside ``fit`` run as
# the matching ``ddp`` strategy instead.
#
# ``ddp_spawn`` / ``ddp_fork`` / ``ddp_notebook`` train in child processes and hand only the
# weights and logged metrics back to the main process. Everything else a run reports lives in
# the children and is lost: the test metrics and pruning history behind ``metrics.json``, the step
# timer, the logger's state (Lightning's CSVLogger then fails at test time with "dict contains
# fields not in fieldnames"). ``ddp`` starts every rank as a full copy of the command instead, so
# each rank reports what it trained; it is what peftlab supports (``trainer=ddp`` on GPUs,
# ``trainer=ddp_sim`` for CPU processes). lightning-hydra-template's tests pass ``ddp_spawn``:
# they run, as ``ddp``, with one line saying so.
IN_PROCESS_LAUNCHERS = ("spawn", "fork", "notebook", "forkserver")


def popen_strategy(cfg: DictConfig) -> Any:
    """``trainer.strategy`` with ranks started as copies of the command (``ddp``), or None when it already is.

    ``ddp_spawn`` → ``ddp``, ``ddp_spawn_find_unused_parameters_true`` →
    ``ddp_find_unused_parameters_true`` …; a ``DDPStrategy`` config gets ``start_method=popen``.
    One line on stdout names the replacement.
    """
    strategy: Any = cfg.trainer.get("strategy")
    if isinstance(strategy, str):
        words = strategy.split("_")
        if not any(w in IN_PROCESS_LAUNCHERS for w in words):
            return None
        replacement: Any = "_".join(w for w in words if w not in IN_PROCESS_LAUNCHERS)
        shown = replacement
    elif isinstance(strategy, (dict, DictConfig)) and str(strategy.get("start_method", "popen")) in IN_PROCESS_LAUNCHERS:
        replacement = instantiate(OmegaConf.merge(strategy, {"start_method": "popen"}))
        strategy, shown = f"{strategy.get('_target_', 'strategy')}(start_method={strategy.get('start_method')})", "start_method=popen"
    else:
        return None
    if _is_launching_process():
        print(f"trainer.strategy={strategy}: running it as {shown} (ranks start as copies of the command, so each reports what it trained)")
    return replacement


def _is_launching_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") in ("0", "")
