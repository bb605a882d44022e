"""Command-line entry points (``train.py``/``peftlab-train`` and ``eval.py``/``peftlab-eval``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from peftlab.errors import ConfigError
from peftlab.reporting import failure_payload, write_metrics
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
        if _is_rank_zero():
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def train_entry(cfg: DictConfig) -> float | None:
    """Train; returns the metric named by ``optimized_metric`` for Hydra sweepers."""
    from peftlab.train import train

    metrics = run_guarded(train, cfg)
    return metrics["optimized_metric"]["value"]


@hydra.main(version_base="1.3", config_name="eval", config_path=CONFIG_DIR)
def eval_entry(cfg: DictConfig) -> float:
    """Test a checkpoint; returns its test score."""
    from peftlab.evaluate import evaluate

    return run_guarded(evaluate, cfg)["score"]
