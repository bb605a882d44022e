"""The evaluation recipe: rebuild the model a checkpoint was trained as, and test it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from peftlab.builders import build_datamodule, build_model, build_strategy_callbacks, build_trainer
from peftlab.callbacks.generation_samples import GenerationSamples
from peftlab.checkpoints.safe_loading import check_state_dict_matches, load_checkpoint_safely
from peftlab.checkpoints.stored_config import load_buildable_config
from peftlab.errors import ConfigError
from peftlab.pruning.adapter_gates import gate_pruned_rows
from peftlab.reporting import count_parameters, report_run, sharing_comparison
from peftlab.reporting.run_reports import prunable_from_callbacks


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on the test split it was trained with; return ``metrics.json``'s contents."""
    run_dir = Path(cfg.paths.output_dir)
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path", "required: the checkpoint to test, e.g. python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    # the stored config supplies values, never what to import; trust_remote_code only from this command line
    train_cfg = load_buildable_config(cfg.ckpt_path, trust_remote_code_from(cfg))
    datamodule = build_datamodule(train_cfg)
    model = build_model(train_cfg)
    gate_pruned_rows(model.body.adapter_layers())  # as in training: an adapter adds nothing to a pruned unit (PruningCallback.attach gates it)
    checkpoint = load_checkpoint_safely(cfg.ckpt_path, mmap=True)
    model.on_load_checkpoint(checkpoint)  # masks made loadable, frozen pretrained weights put back
    check_state_dict_matches(model, checkpoint["state_dict"], cfg.ckpt_path)
    del checkpoint
    trainer = build_trainer(cfg, callbacks=[GenerationSamples(run_dir, cfg.get("generation_samples", 8))], loggers=[])
    trainer.test(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, verbose=False, weights_only=True)
    metrics = {
        "status": "completed",
        "run_dir": str(run_dir),
        "ckpt_path": str(cfg.ckpt_path),
        "tasks": model.last_test_metrics,
        "score": model.test_metrics.score(model.last_test_metrics),
        "params": count_parameters(model, prunable_from_callbacks(build_strategy_callbacks(train_cfg), model)),
        "alpha": model.weighting.alpha(),
        "config": OmegaConf.to_container(train_cfg),
    }
    report_run(run_dir, metrics, sharing_comparison(model))
    return metrics


def trust_remote_code_from(cfg: DictConfig) -> bool:
    """``trust_remote_code`` as given on the command line (``eval.py ... trust_remote_code=true``); false unless set."""
    value = cfg.get("trust_remote_code", False)
    if not isinstance(value, bool):
        raise ConfigError("trust_remote_code", f"must be true or false; got {value!r}")
    return value
