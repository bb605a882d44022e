"""The training recipe: build, fit, test with the best checkpoint, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from peftlab.builders import build_callbacks, build_datamodule, build_loggers, build_model, build_strategy_callbacks, build_trainer
from peftlab.callbacks.alpha_trajectory import AlphaTrajectory
from peftlab.callbacks.config_in_checkpoint import ConfigInCheckpoint
from peftlab.callbacks.generation_samples import GenerationSamples
from peftlab.callbacks.rng_state import RngStateInCheckpoint
from peftlab.callbacks.slurm_requeue import RequeueOnSignal
from peftlab.callbacks.step_timer import StepTimer
from peftlab.callbacks.stop_on_signal import StopOnSignal
from peftlab.checkpoints.mismatch import checkpoint_mismatch
from peftlab.checkpoints.pruned_resume import check_pruned_resume
from peftlab.errors import ConfigError
from peftlab.reporting import count_parameters, report_run, sharing_comparison
from peftlab.reporting.run_reports import prunable_from_callbacks, reports_from_callbacks
from peftlab.reporting.wandb_run import log_final_report
from peftlab.validators import check_int


def train(cfg: DictConfig, keep: dict[str, Any] | None = None, first_callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train the configured multi-task model and return the contents of ``metrics.json``.

    ``keep``: a dict that receives the tested ``model`` and its ``datamodule`` (what
    ``strategy=oneshot_prune`` prunes when it trains the dense model itself).
    ``first_callbacks``: callbacks placed before all others (``strategy=prune_recover`` loads the dense weights with one).
    """
    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError("ckpt_path", f"file not found: {cfg.ckpt_path}; resume from a checkpoint of an earlier run, e.g. <run dir>/checkpoints/last.ckpt")
    check_run_values(cfg)  # seed, epoch/step budget, validation interval: one line each instead of a traceback
    if cfg.get("ckpt_path"):
        check_pruned_resume(cfg.ckpt_path, cfg.strategy.get("pruning"))  # a pruned checkpoint needs its pruning
    L.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    timer = StepTimer()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks = (
        list(first_callbacks)
        + build_callbacks(cfg)
        + build_strategy_callbacks(cfg)
        + [
            timer,
            AlphaTrajectory(),
            GenerationSamples(run_dir, cfg.get("generation_samples", 8)),
            ConfigInCheckpoint(resolved),
            RngStateInCheckpoint(),
            RequeueOnSignal(run_dir / "checkpoints"),
            StopOnSignal(run_dir / "checkpoints"),
        ]
    )
    trainer = build_trainer(cfg, callbacks, build_loggers(cfg), model)
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    except RuntimeError as exc:  # a checkpoint of another model: say which config key differs
        raise checkpoint_mismatch(exc, cfg.get("ckpt_path"), _saved_config(cfg.get("ckpt_path")), resolved) or exc
    fit_s = time.perf_counter() - start

    ckpt_path = _checkpoint_to_test(trainer)
    optimized = _optimized_metric(cfg, trainer)  # before test, which clears trainer.callback_metrics
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)  # Lightning's loads are safe loads too

    metrics = {
        "status": "completed",
        "run_dir": str(run_dir),
        "ckpt_path": ckpt_path,
        "tasks": model.last_test_metrics,
        "score": model.test_metrics.score(model.last_test_metrics),
        "params": count_parameters(model, prunable_from_callbacks(callbacks, model)),
        "alpha": model.weighting.alpha(),
        "timing": timer.summary(fit_s),
        "optimized_metric": optimized,
        "config": resolved,
    }
    metrics.update(reports_from_callbacks(callbacks, model, run_dir))
    report_run(run_dir, metrics, sharing_comparison(model))
    if keep is not None:
        keep.update(model=model, datamodule=datamodule)
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
    """The value sweepers optimise: the best checkpoint's score if it is the monitored metric, else its last value
    (no best checkpoint: ``fast_dev_run``, or no checkpoint monitors it). Call it before ``trainer.test``."""
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


# Run-level values Lightning and numpy would answer with a traceback or a wrong run:
# * ``seed``: numpy seeds in ``[0, 2**32 - 1]``; text or a value outside gives a traceback deep in
#   ``seed_everything`` (null: Lightning picks one).
# * ``trainer.max_epochs``: ``0`` trains nothing and reported an untrained model as "completed";
#   ``-1`` (Lightning's "no epoch limit") made the per-epoch cosine schedule oscillate for ever and
#   leaves the pruning fractions without a run length. peftlab requires an epoch budget >= 1; to
#   stop by steps, set ``trainer.max_steps`` as well (the run ends at whichever comes first).
# * ``trainer.max_steps``: ``-1`` (no step limit) or >= 1; ``0`` trains nothing.
# * ``trainer.check_val_every_n_epoch``: >= 1 (Lightning divides by it), or null.
MAX_SEED = 2**32 - 1  # numpy.random.seed's upper bound (seed_everything seeds numpy too)


def check_run_values(cfg: DictConfig) -> None:
    """ConfigError naming the key of the first bad ``seed`` / ``trainer.*`` budget value."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ConfigError("seed", f"must be an integer in [0, {MAX_SEED}] (numpy's seed range) or null; got {seed!r}")
    trainer = cfg.get("trainer") or {}
    epochs = trainer.get("max_epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(
            "trainer.max_epochs",
            f"must be an integer >= 1 (0 trains nothing; -1, no epoch limit, leaves the LR schedule and pruning fractions without a run length: "
            f"to stop by steps set trainer.max_steps too); got {epochs!r}",
        )
    steps = trainer.get("max_steps")
    if steps is not None and steps != -1:
        check_int("trainer.max_steps", steps, minimum=1)  # -1: no step limit
    every = trainer.get("check_val_every_n_epoch")
    if every is not None:
        check_int("trainer.check_val_every_n_epoch", every, minimum=1)
