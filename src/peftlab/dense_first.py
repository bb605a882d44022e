"""The dense model the pruning recipes start from when ``strategy.from_ckpt`` is null: trained first, resumable.

``strategy=oneshot_prune`` and ``strategy=prune_recover`` train the config's model without
pruning (and, for prune_recover, with full sharing instead of the recovery's adapters) into
``<run dir>/dense``. That run goes through the same auto-resume as any job: an interrupted
command, run again, continues the dense training from ``dense/checkpoints/last.ckpt``, and a
dense run that completed is not trained again (its checkpoint is taken).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from peftlab.errors import ConfigError


def dense_config(cfg: DictConfig, out_dir: Path, sharing: Any = None) -> DictConfig:
    """``cfg`` for the dense run: no pruning, no recipe, into ``out_dir``; ``sharing`` replaces the strategy's when given."""
    dense = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    dense.paths.output_dir = str(out_dir)
    dense.strategy.pruning = {"enabled": False}
    dense.strategy.recipe = None
    if sharing is not None:
        dense.strategy.sharing = sharing
    for key in ("from_ckpt", "init_from"):
        dense.strategy.pop(key, None)
    dense.pop("ckpt_path", None)  # (a resume of the outer run is not the dense run's)
    return dense


def train_dense(dense: DictConfig, keep: dict[str, Any]) -> str | None:
    """Train (or continue, or take the completed) dense run of ``dense``; its checkpoint. ``keep`` gets the model when trained here."""
    from peftlab.runs.auto_resume import run_or_continue
    from peftlab.train import train

    metrics = run_or_continue(lambda c: train(c, keep), dense)
    if metrics.get("status") != "completed":
        raise ConfigError("strategy.from_ckpt", f"the dense run in {dense.paths.output_dir} did not complete ({metrics.get('error', 'no error recorded')})")
    return metrics.get("ckpt_path")
