"""The prune-then-recover recipe (``strategy=prune_recover``): one-shot prune, then a short shared-LoRA fine-tune.

As LLM-Pruner and Sheared-LLaMA recover after pruning: the dense model (``strategy.from_ckpt``,
or trained first into ``<run dir>/dense`` as ``strategy=oneshot_prune`` does) is loaded into the
recovery model, whose backbone layers carry one shared LoRA adapter with the base weights frozen;
the pruning callback (``strategy.pruning``: wanda, sparsegpt, magnitude, …, ``one_shot`` at step
0) calibrates and prunes the base weights, and the LoRA trains for the trainer's budget. Frozen
base weights get no gradient, so pruned entries stay 0 while the adapter recovers the accuracy.
``scripts/export.py`` merges the LoRA into the masked base weights and masks again (exactly the
asked sparsity). The recovery is an ordinary training run: checkpoints, auto-resume and the
metrics contract are train's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from peftlab.callbacks.init_from_dense import InitFromDense
from peftlab.dense_first import dense_config, recipe_inputs, train_dense
from peftlab.errors import ConfigError

KEY = "strategy.from_ckpt"


def prune_recover(cfg: DictConfig) -> dict[str, Any]:
    """Prune ``strategy.from_ckpt``'s model once (or the dense model trained here) and fine-tune a shared LoRA with masks held."""
    from hydra.utils import instantiate

    from peftlab.train import train

    run_dir = Path(cfg.paths.output_dir)
    source, pruning = recipe_inputs(cfg, "prune_recover")
    instantiate(pruning)  # its settings checked before any dense training
    start = InitFromDense(str(source)) if source else None
    if start is None:
        keep: dict[str, Any] = {}
        source = train_dense(dense_config(cfg, run_dir / "dense", sharing=OmegaConf.to_container(cfg.strategy.dense_sharing)), keep)
        if source:
            start = InitFromDense(str(source))
        elif "model" in keep:  # trained just now without checkpoints (callbacks=none, debug=fast_dev_run): its weights as they are
            start = InitFromDense(str(run_dir / "dense"), state={k: v.detach().cpu() for k, v in keep["model"].state_dict().items()})
        else:
            raise ConfigError(KEY, f"the dense run in {run_dir / 'dense'} completed without a checkpoint to recover from; enable checkpoints (callbacks=default) or give strategy.from_ckpt")
    return train(cfg, first_callbacks=[start])  # (cfg unchanged: a rerun of the command resumes this run)
