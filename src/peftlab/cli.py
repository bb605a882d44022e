"""Command-line entry points (``train.py``/``peftlab-train`` and ``eval.py``/``peftlab-eval``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from peftlab.errors import ConfigError
from peftlab.reporting import METRICS_FILE, failure_payload, write_metrics
from peftlab.utils.auto_resume import completed_run, resume_from_last_checkpoint  # clusters: auto-resume
from peftlab.utils.group_options import unknown_group_option
from peftlab.utils.multirun_ddp import child_argv, prepare_job  # clusters: DDP inside -m
from peftlab.utils.slurm_signals import exit_on_sigterm_under_slurm  # clusters: requeue leaves no failed record
from peftlab.utils.resolvers import register_resolvers

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
register_resolvers()


def run_guarded(recipe: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run a recipe; on failure record it in metrics.json, and turn bad config into one line + exit 2."""
    try:
        return recipe(cfg)
    except Exception as exc:
        config_error = find_config_error(exc)
        run_dir = cfg.paths.output_dir
        # never replace the record of an earlier run (e.g. when hydra.run.dir points at one)
        if _is_rank_zero() and not (Path(run_dir) / METRICS_FILE).exists():
            config = OmegaConf.to_container(cfg, resolve=False)
            write_metrics(run_dir, failure_payload(run_dir, config_error or exc, config))
        if config_error is not None:
            print(f"error: {config_error}", file=sys.stderr)
            sys.exit(2)
        raise


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


def _quiet_duplicate_lightning_logs() -> None:
    """Lightning adds its own console handler at import; Hydra's root handlers already print."""
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def _check_group_options() -> None:
    message = unknown_group_option(CONFIG_DIR, sys.argv[1:])
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _train_main(cfg: DictConfig) -> float | None:
    from peftlab.train import train

    _quiet_duplicate_lightning_logs()
    prepare_job()  # clusters: DDP children of this job run only this job (utils/multirun_ddp.py)
    exit_on_sigterm_under_slurm()  # clusters: a requeued/cancelled SLURM job exits without recording a failure
    # clusters: a completed job is not re-run; a job with checkpoints/last.ckpt resumes (utils/auto_resume.py)
    metrics = completed_run(cfg) or run_guarded(train, resume_from_last_checkpoint(cfg))
    return metrics["optimized_metric"]["value"]


@hydra.main(version_base="1.3", config_name="eval", config_path=CONFIG_DIR)
def _eval_main(cfg: DictConfig) -> float:
    from peftlab.evaluate import evaluate

    _quiet_duplicate_lightning_logs()
    return run_guarded(evaluate, cfg)["score"]


def train_entry() -> None:
    """``python train.py [overrides]``: train; returns ``optimized_metric`` to Hydra sweepers."""
    sys.argv = child_argv(sys.argv)  # clusters: a DDP child of a multirun job runs just that job
    _check_group_options()
    _train_main()


def eval_entry() -> None:
    """``python eval.py ckpt_path=...``: test a checkpoint."""
    _check_group_options()
    _eval_main()
