"""The dense model the pruning recipes start from when ``strategy.from_ckpt`` is null: trained first, resumable.

``strategy=oneshot_prune`` and ``strategy=prune_recover`` train the config's model without
pruning (and, for prune_recover, with full sharing instead of the recovery's adapters) into
``<run dir>/dense``. That run goes through the same auto-resume as any job: an interrupted
command, run again, continues the dense training from ``dense/checkpoints/last.ckpt``, and a
dense run that completed is not trained again (its checkpoint is taken).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from peftlab.errors import ConfigError


def recipe_inputs(cfg: DictConfig, recipe: str) -> tuple[str | None, DictConfig]:
    """``(strategy.from_ckpt or None, strategy.pruning)`` of a pruning recipe (``oneshot_prune``,
    ``prune_recover``), checked: the checkpoint exists, a criterion is set, its schedule is one_shot."""
    source = cfg.strategy.get("from_ckpt")
    if source and not Path(source).is_file():
        raise ConfigError("strategy.from_ckpt", f"file not found: {source}; give the checkpoint of a trained dense run, or null to train the dense model first")
    pruning = cfg.strategy.get("pruning")
    if not pruning or "_target_" not in pruning:
        raise ConfigError("strategy.pruning", f"{recipe} needs a pruning criterion: strategy/pruning=<wanda|sparsegpt|magnitude|…>")
    if pruning.get("schedule") != "one_shot":
        raise ConfigError("strategy.pruning.schedule", f"{recipe} prunes once: must be one_shot; got {pruning.get('schedule')!r}")
    return source, pruning


def dense_config(cfg: DictConfig, out_dir: Path, sharing: Any = None) -> DictConfig:
    """``cfg`` for the dense run: no pruning, no recipe, into ``out_dir``; ``sharing`` replaces the strategy's when given."""
    dense = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    dense.paths.output_dir = str(out_dir)
    dense.strategy.pruning = {"enabled": False}
    dense.strategy.recipe = None
    if sharing is not None:
        dense.strategy.sharing = sharing
    for key in ("from_ckpt", "init_from", "adapter_lr", "dense_sharing"):  # (adapter_lr: the recovery's rate, not full fine-tuning's)
        dense.strategy.pop(key, None)
    dense.pop("ckpt_path", None)  # (a resume of the outer run is not the dense run's)
    return dense


def train_dense(dense: DictConfig, keep: dict[str, Any]) -> str | None:
    """Train (or continue, or take the completed) dense run of ``dense``; its checkpoint. ``keep`` gets the model when trained here.

    As auto-resume does for a job (:mod:`peftlab.runs.auto_resume`, a layer above this one): a
    completed dense run is taken, one with ``checkpoints/last.ckpt`` continues from it. The dense
    dir lies inside the outer run dir, which auto-resume has already matched to this same command.
    """
    from peftlab.train import train

    out = Path(dense.paths.output_dir)
    done = out / "metrics.json"
    if done.is_file():
        metrics = json.loads(done.read_text())
        if metrics.get("status") == "completed":
            return metrics.get("ckpt_path")
    last = out / "checkpoints" / "last.ckpt"
    if last.is_file():
        with open_dict(dense):
            dense.ckpt_path = str(last)
    metrics = train(dense, keep)
    if metrics.get("status") != "completed":
        raise ConfigError("strategy.from_ckpt", f"the dense run in {out} did not complete ({metrics.get('error', 'no error recorded')})")
    return metrics.get("ckpt_path")
