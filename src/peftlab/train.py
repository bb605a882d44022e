"""The training recipe: build, fit, test with the best checkpoint, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from peftlab.builders import build_callbacks, build_datamodule, build_loggers, build_model, build_strategy_callbacks, build_trainer
from peftlab.callbacks.alpha_trajectory import AlphaTrajectory
from peftlab.callbacks.config_in_checkpoint import ConfigInCheckpoint
from peftlab.callbacks.rng_state import RngStateInCheckpoint
from peftlab.callbacks.slurm_requeue import RequeueOnSignal
from peftlab.callbacks.step_timer import StepTimer
from peftlab.checkpoints.mismatch import checkpoint_mismatch
from peftlab.errors import ConfigError
from peftlab.reporting import count_parameters, report_run, sharing_comparison
from peftlab.reporting.run_reports import prunable_from_callbacks, reports_from_callbacks
from peftlab.reporting.wandb_run import log_final_report


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the configured multi-task model and return the contents of ``metrics.json``."""
    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError("ckpt_path", f"file not found: {cfg.ckpt_path}; resume from a checkpoint of an earlier run, e.g. <run dir>/checkpoints/last.ckpt")
    L.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    timer = StepTimer()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks = build_callbacks(cfg) + build_strategy_callbacks(cfg) + [timer, AlphaTrajectory(), ConfigInCheckpoint(resolved), RngStateInCheckpoint(), RequeueOnSignal(run_dir / "checkpoints")]
    trainer = build_trainer(cfg, callbacks, build_loggers(cfg), model)
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except RuntimeError as exc:  # a checkpoint of another model: say which config key differs
        raise checkpoint_mismatch(exc, cfg.get("ckpt_path"), _saved_config(cfg.get("ckpt_path")), resolved) or exc
    fit_s = time.perf_counter() - start

    ckpt_path = _checkpoint_to_test(trainer)
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)

    metrics = {
        "status": "completed",
        "run_dir": str(run_dir),
        "ckpt_path": ckpt_path,
        "tasks": model.last_test_metrics,
        "score": model.test_metrics.score(model.last_test_metrics),
        "params": count_parameters(model, prunable_from_callbacks(callbacks, model)),
        "alpha": model.weighting.alpha(),
        "timing": timer.summary(fit_s),
        "optimized_metric": _optimized_metric(cfg, trainer),
        "config": resolved,
    }
    metrics.update(reports_from_callbacks(callbacks, model, run_dir))
    report_run(run_dir, metrics, sharing_comparison(model))
    log_final_report(trainer.loggers, metrics, run_dir)  # W&B gets the summary table and plots
    _finish_loggers(trainer)
    return metrics


def _saved_config(ckpt_path: str | None) -> dict | None:
    """The config stored in a peftlab checkpoint (None without one)."""
    from peftlab.checkpoints.stored_config import load_training_config

    try:
        return OmegaConf.to_container(load_training_config(ckpt_path)) if ckpt_path else None
    except Exception:
        return None


def _checkpoint_to_test(trainer: L.Trainer) -> str | None:
    """The best checkpoint by a monitored metric, else the most recent one (None if nothing was saved)."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    best = [c.best_model_path for c in callbacks if c.monitor and c.best_model_path]
    recent = [c.best_model_path or c.last_model_path for c in callbacks if not c.monitor]
    return next((p for p in best + recent + [c.last_model_path for c in callbacks] if p), None)


def _optimized_metric(cfg: DictConfig, trainer: L.Trainer) -> dict[str, Any]:
    """The value sweepers optimise: the best checkpoint's score if it is the monitored metric."""
    name = cfg.get("optimized_metric")
    ckpt = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor == name), None)
    if ckpt is not None and ckpt.best_model_score is not None:
        value = float(ckpt.best_model_score)
    else:
        value = trainer.callback_metrics.get(name)
        value = float(value) if value is not None else None
    return {"name": name, "value": value}


def _finish_loggers(trainer: L.Trainer) -> None:
    for lg in trainer.loggers:
        lg.finalize("success")
        if type(lg).__name__ == "WandbLogger" and rank_zero_only.rank == 0:
            lg.experiment.finish()
