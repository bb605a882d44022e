"""Command-line entry points (``train.py``/``peftlab-train``, ``eval.py``/``peftlab-eval``, ``predict.py``/``peftlab-predict``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from peftlab.config import CONFIG_DIR
from peftlab.config.command_line import misused_argument
from peftlab.config.group_options import unknown_group_option
from peftlab.config.open_mappings import open_mapping_overrides
from peftlab.config.override_keys import unknown_override_key
from peftlab.config.resolvers import register_resolvers
from peftlab.errors import ConfigError
from peftlab.reporting import failure_payload, write_metrics
from peftlab.reporting.metrics_file import interrupted_payload, replaceable_record
from peftlab.runs.auto_resume import RunDirInUse, run_or_continue
from peftlab.runs.library_warnings import quiet_framework_noise
from peftlab.runs.multirun_ddp import child_argv, prepare_job, release_process_group
from peftlab.runs.slurm_signals import exit_on_sigterm_under_slurm

register_resolvers()
log = logging.getLogger(__name__)


def run_guarded(recipe: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    """Run a recipe; on failure record it in metrics.json.

    A single run turns bad config into one ``error:`` line and exit status 2 (other errors
    propagate). A job of a multirun never stops the sweep: its failure is recorded, one line is
    printed (the traceback of an unexpected error goes to the job's log) and None is returned,
    so the remaining jobs run and the sweep report lists it.

    A run stopped by SIGTERM / SIGINT (callbacks/stop_on_signal.py) records ``status:
    "interrupted"``, prints one line and exits with 128 + the signal number, sweep or not.
    """
    try:
        return recipe(cfg)
    except Exception as exc:
        if type(exc).__name__ == "RunInterrupted":  # (by name: importing it here would load Lightning)
            _record_interruption(exc, cfg)
        config_error = find_config_error(exc)
        run_dir = cfg.paths.output_dir
        # never replace the record of an earlier run, nor write into a run dir that holds another run
        if _is_rank_zero() and replaceable_record(run_dir) and not isinstance(config_error, RunDirInUse):
            config = OmegaConf.to_container(cfg, resolve=False)
            write_metrics(run_dir, failure_payload(run_dir, config_error or exc, config))
        if _in_multirun():
            if config_error is None:
                log.error("job failed", exc_info=exc)
            line = " ".join(str(config_error or exc).split()) or type(exc).__name__
            print(f"error: job {Path(run_dir).name}: {line}", file=sys.stderr)
            return None
        if config_error is not None:
            print(f"error: {config_error}", file=sys.stderr)
            sys.exit(2)
        raise


def _record_interruption(stop: Any, cfg: DictConfig) -> None:
    """metrics.json ``status: "interrupted"`` (rank 0), one line, exit 128 + signal."""
    run_dir = cfg.paths.output_dir
    stopped = {"signal": stop.signal_name, "epoch": stop.epoch, "global_step": stop.global_step, "ckpt_step": stop.ckpt_step}
    if _is_rank_zero() and replaceable_record(run_dir):
        write_metrics(run_dir, interrupted_payload(run_dir, stopped, stop.ckpt_path, OmegaConf.to_container(cfg, resolve=False)))
    resume = f"{stop.ckpt_path} (step {stop.ckpt_step}) resumes it: run the same command again" if stop.ckpt_path else "no checkpoint was written yet"
    if _is_rank_zero():
        print(f"interrupted: {stop.signal_name} at epoch {stop.epoch}, global step {stop.global_step}; {resume}", file=sys.stderr)
    sys.exit(stop.exit_code)


def find_config_error(exc: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``exc``, if any (Hydra's instantiate wraps errors of constructors)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _in_multirun() -> bool:
    """Whether this job is one of a ``-m`` sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _check_overrides(config_name: str) -> None:
    """One-line errors for unknown group options and mistyped keys, before Hydra runs.

    These checks only ever add a clearer message for an override Hydra would reject anyway.
    """
    args = sys.argv[1:]
    message = misused_argument(args) or unknown_group_option(CONFIG_DIR, args) or unknown_override_key(CONFIG_DIR, config_name, args)
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _train_main(cfg: DictConfig) -> float | None:
    from peftlab.oneshot import oneshot_prune
    from peftlab.recover import prune_recover
    from peftlab.train import train

    # strategy=oneshot_prune: no fit; strategy=prune_recover: dense weights, one-shot pruning, LoRA fit
    recipe = {"oneshot": oneshot_prune, "recover": prune_recover}.get(cfg.strategy.get("recipe"), train)
    quiet_framework_noise()
    prepare_job()  # DDP children of this job run only this job (runs/multirun_ddp.py)
    exit_on_sigterm_under_slurm()  # a requeued/cancelled SLURM job exits without recording a failure
    # a completed job is not re-run; a job whose run dir holds checkpoints/last.ckpt resumes (runs/auto_resume.py)
    metrics = run_guarded(lambda c: run_or_continue(recipe, c), cfg)
    return metrics["optimized_metric"]["value"] if metrics else None


@hydra.main(version_base="1.3", config_name="eval", config_path=CONFIG_DIR)
def _eval_main(cfg: DictConfig) -> float | None:
    from peftlab.evaluate import evaluate

    quiet_framework_noise(evaluating=True)
    metrics = run_guarded(evaluate, cfg)
    return metrics["score"] if metrics else None


@hydra.main(version_base="1.3", config_name="predict", config_path=CONFIG_DIR)
def _predict_main(cfg: DictConfig) -> None:
    from peftlab.predict import predict

    quiet_framework_noise(evaluating=True)
    run_guarded(predict, cfg)


def train_entry() -> None:
    """``python train.py [overrides]``: train; returns ``optimized_metric`` to Hydra sweepers."""
    sys.argv = child_argv(sys.argv)  # a Lightning DDP child of a multirun job runs just that job
    sys.argv = [sys.argv[0], *open_mapping_overrides(sys.argv[1:])]  # data.sources.<task>=… without + (config/open_mappings.py)
    _check_overrides("train")
    try:
        _train_main()
    finally:
        release_process_group()  # a gloo group alive at exit can abort this rank (runs/multirun_ddp.py)


def eval_entry() -> None:
    """``python eval.py ckpt_path=...``: test a checkpoint."""
    _check_overrides("eval")
    _eval_main()


def predict_entry() -> None:
    """``python predict.py ckpt_path=... input=...``: predict new inputs with a trained model."""
    _check_overrides("predict")
    _predict_main()
