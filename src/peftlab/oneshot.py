"""The one-shot pruning recipe (``strategy=oneshot_prune``): calibrate, prune, evaluate — no training.

The model is the one ``strategy.from_ckpt`` (a dense run's checkpoint) was trained as, rebuilt
from the config stored in it, with its weights; its data is that run's data. Without
``from_ckpt`` the dense model is trained first, as ``strategy=share`` would (into ``<run dir>/dense``,
resumed from its last.ckpt when the command is run again after an interruption), and then pruned; only calibration and pruning are timed. The pruning
callback of ``strategy.pruning`` (Wanda, SparseGPT, magnitude, …) prunes it once to
``final_sparsity`` from ``calibration.batches`` training batches; the test split is evaluated
(dense first when ``strategy.compare_dense``), and ``checkpoints/pruned.ckpt`` is written with
the masks as buffers and a config naming the pruning, so ``eval.py`` and ``scripts/export.py``
take it like any pruned checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from peftlab.builders import build_trainer
from peftlab.callbacks.calibration_batches import EvalMode
from peftlab.callbacks.config_in_checkpoint import ConfigInCheckpoint
from peftlab.dense_first import dense_config, recipe_inputs, train_dense
from peftlab.errors import ConfigError
from peftlab.export import load_masked_model
from peftlab.reporting import count_parameters, report_run, sharing_comparison
from peftlab.reporting.run_reports import reports_from_callbacks

KEY = "strategy.from_ckpt"


def oneshot_prune(cfg: DictConfig) -> dict[str, Any]:
    """Prune ``strategy.from_ckpt``'s model once and test it; return ``metrics.json``'s contents."""
    run_dir = Path(cfg.paths.output_dir)
    source, pruning_cfg = recipe_inputs(cfg, "oneshot_prune")
    pruning = instantiate(pruning_cfg)  # its settings checked before any dense training
    if source:
        model, train_cfg, datamodule = load_masked_model(source, bool(cfg.model.get("trust_remote_code", False)))
    else:
        model, train_cfg, datamodule, source = _train_dense(cfg, run_dir / "dense")
    L.seed_everything(cfg.seed, workers=True)
    stored = _pruned_config(train_cfg, cfg)
    trainer = build_trainer(cfg, callbacks=[ConfigInCheckpoint(stored), pruning], loggers=[])
    dense = None
    if cfg.strategy.get("compare_dense", True):
        trainer.test(model, datamodule=datamodule, verbose=False)
        dense = {"tasks": model.last_test_metrics, "score": model.test_metrics.score(model.last_test_metrics)}

    model.to(trainer.strategy.root_device)  # (Lightning's test moves the model back to the CPU when it ends)
    start = time.perf_counter()
    prune_once(pruning, model, datamodule)
    prune_s = time.perf_counter() - start

    trainer.test(model, datamodule=datamodule, verbose=False)
    ckpt = run_dir / "checkpoints" / "pruned.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # (a full checkpoint: eval, export and the callbacks read it)
    metrics = {
        "status": "completed",
        "run_dir": str(run_dir),
        "ckpt_path": str(ckpt),
        "from_ckpt": str(source) if source else None,
        "tasks": model.last_test_metrics,
        "score": model.test_metrics.score(model.last_test_metrics),
        "dense": dense,
        "params": count_parameters(model, pruning.prunable_parameters(model)),
        "alpha": model.weighting.alpha(),
        "timing": {"calibrate_and_prune_s": round(prune_s, 4)},
        "optimized_metric": {"name": cfg.get("optimized_metric"), "value": None},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    metrics.update(reports_from_callbacks([pruning], model, run_dir))
    report_run(run_dir, metrics, sharing_comparison(model))
    return metrics


def prune_once(pruning: Any, model: torch.nn.Module, datamodule: Any) -> None:
    """Attach masks, calibrate on the training batches (Wanda, SparseGPT) and prune to ``final_sparsity`` at step 0."""
    pruning.schedule.resolve(1)
    pruning.attach(model)
    pruning.calibrate(datamodule, model)
    target = pruning.schedule.final_sparsity
    with EvalMode(model):
        pruning.update_masks(target, 0)
    progress = pruning.progress
    progress.final_applied, progress.last_update_step = True, 0
    progress.history.append((0, progress.current_sparsity))


def _train_dense(cfg: DictConfig, out_dir: Path) -> tuple[torch.nn.Module, DictConfig, Any, str | None]:
    """Train the dense model of ``cfg`` (no pruning) into ``out_dir``, or continue / take it there; its tested model, config, datamodule and checkpoint."""
    keep: dict[str, Any] = {}
    dense = dense_config(cfg, out_dir)
    ckpt = train_dense(dense, keep)
    if "model" not in keep:  # completed by an earlier start of this command: not trained again
        if not ckpt:
            raise ConfigError(KEY, f"the dense run in {out_dir} completed without a checkpoint to prune; enable checkpoints (callbacks=default) or give strategy.from_ckpt")
        model, dense, datamodule = load_masked_model(ckpt, bool(cfg.model.get("trust_remote_code", False)))
        return model, dense, datamodule, ckpt
    return keep["model"], dense, keep["datamodule"], ckpt


def _pruned_config(train_cfg: DictConfig, cfg: DictConfig) -> dict[str, Any]:
    """The stored config of the pruned checkpoint: the dense run's, with this command's pruning."""
    stored = OmegaConf.to_container(train_cfg, resolve=True)
    stored["strategy"]["pruning"] = OmegaConf.to_container(cfg.strategy.pruning, resolve=True)
    return stored
