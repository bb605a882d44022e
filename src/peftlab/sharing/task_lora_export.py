"""Exporting task_lora: each task's adapter as a peft adapter folder; one merged model is refused.

A task_lora body (:class:`peftlab.sharing.task_lora.TaskLoraBody`) has one LoRA per task on
one frozen base, so it cannot merge into one model (``scripts/export.py`` refuses, see
:func:`refuse_merged_export`); :func:`export_task_adapter` writes what ``PeftModel.from_pretrained``
loads on the base model instead, one folder per task.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import torch

from peftlab.checkpoints.atomic_files import atomic_folder
from peftlab.errors import ConfigError


def refuse_merged_export() -> NoReturn:
    """The one-line ConfigError a merged export of a task_lora model gets."""
    raise ConfigError(
        "ckpt_path",
        "a task_lora model has one LoRA per task on a shared base, which cannot merge into one model; "
        "export each task's adapter with peftlab.sharing.task_lora.export_task_adapter (PeftModel loads it)",
    )


@torch.no_grad()
def export_task_adapter(body: Any, task: str, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write task ``task``'s adapter of a task_lora ``body`` as a peft adapter directory (``adapter_config.json`` + safetensors).

    ``PeftModel.from_pretrained(base, out_dir)`` on the backbone's base model then gives that task's
    features. With a shared adapter, the two are written as one LoRA of rank ``shared_r + r``
    (``[A_shared; A_task]`` and ``[s_shared·B_shared, s_task·B_task]`` with scaling 1): the sum of
    two low-rank updates is exactly one of the summed rank. Written to a temporary directory and
    moved into place, so a failure leaves nothing half-written.
    """
    from safetensors.torch import save_file

    if task not in body.task_names:
        raise ConfigError("task", f"no adapter for {task!r}; tasks are: {', '.join(body.task_names)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError("out_dir", f"{out} exists and is not empty; pass overwrite=True or choose another directory")
    names = body.adapter_names(task)
    tensors: dict[str, torch.Tensor] = {}
    for path, layer in body.routed_layers():
        a, b = _layer_weights(body, layer, names, task)
        tensors[f"base_model.model.{path}.lora_A.weight"] = a.detach().cpu().contiguous()
        tensors[f"base_model.model.{path}.lora_B.weight"] = b.detach().cpu().contiguous()
    config = _export_config(body, names)
    with atomic_folder(out) as tmp:
        save_file(tensors, str(tmp / "adapter_model.safetensors"))
        config.save_pretrained(str(tmp))
        meta = {"task": task, "adapters": names, "tasks": body.task_names}
        (tmp / "peftlab_task.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _layer_weights(body: Any, layer: Any, names: list[str], task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` of one LoRA layer for adapters ``names``: the task's own, or the stacked sum of several."""
    if len(names) == 1:
        return layer.lora_A[task].weight, layer.lora_B[task].weight
    rank = sum(body.adapter_configs[a].r for a in names)
    a_cat = layer.lora_A[task].weight.new_zeros(rank, layer.in_features)
    b_cat = layer.lora_B[task].weight.new_zeros(layer.out_features, rank)
    offset = 0
    for a in names:
        r = body.adapter_configs[a].r
        if a in layer.lora_A:
            a_cat[offset : offset + r] = layer.lora_A[a].weight
            b_cat[:, offset : offset + r] = layer.lora_B[a].weight * layer.scaling[a]
        offset += r
    return a_cat, b_cat


def _export_config(body: Any, names: list[str]):
    """The peft LoraConfig of the written adapter (one rank-summed LoRA with scaling 1 for several)."""
    task_cfg = body.adapter_configs[names[-1]]
    cfg = copy.deepcopy(task_cfg)
    if len(names) > 1:
        rank = sum(body.adapter_configs[a].r for a in names)
        targets: set[str] = set()
        for a in names:
            targets |= set(body.adapter_configs[a].target_modules or ())
        cfg.r, cfg.lora_alpha, cfg.use_rslora = rank, rank, False  # scaling 1: the scales live in B
        cfg.target_modules = targets
        cfg.rank_pattern, cfg.alpha_pattern = {}, {}
    base = body.base_model()
    cfg.base_model_name_or_path = base["name_or_path"] if base else None
    cfg.inference_mode = True
    return cfg
