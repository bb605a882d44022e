"""Checkpoint → exported file and back: the I/O side of :mod:`peftlab.pruning.compaction`.

Adapters are the body's business (``PolicyBody.adapter_layers()``, ``merge_adapters()``): a body
with adapters (shared LoRA) has them merged into the masked base weights, which are then
masked again, before pruned units are removed; a body whose adapters cannot merge (task_lora:
one per task) refuses with a one-line error.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from peftlab.batch import slice_inputs
from peftlab.checkpoints.atomic_files import atomic_path
from peftlab.checkpoints.safe_loading import check_state_dict_matches, load_checkpoint_safely
from peftlab.errors import ConfigError
from peftlab.pruning.adapter_gates import gate_pruned_rows
from peftlab.pruning.compaction import FORMAT, compact, dense_state_dict, export_payload, shrink_to
from peftlab.pruning.masks import reapply_masks
from peftlab.pruning.semi_structured import semi_structured_report


def load_masked_model(ckpt_path: str, trust_remote_code: bool = False) -> tuple[nn.Module, Any, Any]:
    """The model a peftlab checkpoint was trained as, with its masks loaded; and its config and datamodule.

    Built from peftlab's own components only: the stored config supplies values, never what to
    import, and ``trust_remote_code`` comes from the caller (:mod:`peftlab.checkpoints.safe_build`).
    """
    from peftlab.builders import build_datamodule, build_model
    from peftlab.checkpoints.stored_config import load_buildable_config

    cfg = load_buildable_config(ckpt_path, trust_remote_code)  # raises ConfigError("ckpt_path", ...) on a bad or crafted file
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    checkpoint = load_checkpoint_safely(ckpt_path)
    model.on_load_checkpoint(checkpoint)  # masks made loadable, frozen pretrained weights put back
    check_state_dict_matches(model, checkpoint["state_dict"], ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
    gate_pruned_rows(model.body.adapter_layers())  # as in training: an adapter adds nothing to a pruned unit (PruningCallback.attach gates it)
    return model.eval(), cfg, datamodule


def merge_adapters(model: nn.Module) -> int:
    """Merge the body's adapters into its (masked) base weights and mask them again; returns how many
    layers were merged (0 without adapters). Raises ConfigError for adapters that cannot merge (task_lora)."""
    merged = model.body.merge_adapters()
    if merged:
        reapply_masks(model)
    return merged


def _sample_inputs(datamodule, n: int = 256) -> torch.Tensor:
    batch = next(iter(datamodule.test_dataloader()))
    return slice_inputs(batch["inputs"], slice(0, n))


def _nbytes(obj: Any) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


@torch.no_grad()
def export_checkpoint(ckpt_path: str, out: str, sparse: str = "auto", overwrite: bool = False, tolerance: float = 1e-5, trust_remote_code: bool = False) -> dict[str, Any]:
    """Export ``ckpt_path`` to ``out``; verify outputs match within ``tolerance``. Returns what was done.

    ``trust_remote_code``: let the checkpoint's model folder run its own code (never taken from the checkpoint).
    """
    from peftlab.checkpoints.stored_config import load_buildable_config

    load_buildable_config(ckpt_path, trust_remote_code)  # a bad or crafted ckpt_path fails first, before anything else is looked at
    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise ConfigError("out", f"{out} already exists; pass overwrite=true to replace it or choose another path")
    if out_path.is_dir():
        raise ConfigError("out", f"{out} is a directory; give a file path such as model.pt")
    model, cfg, datamodule = load_masked_model(ckpt_path, trust_remote_code)
    x = _sample_inputs(datamodule)
    reference = model(x)
    params_before = sum(p.numel() for p in model.parameters())
    merged = merge_adapters(model)  # shared LoRA: merge into the masked base, re-mask, then remove units (task_lora: refused)
    removed = compact(model)
    exported = model(x)
    diff = max(float((reference[k] - exported[k]).abs().max()) for k in reference)
    if diff > tolerance:
        raise RuntimeError(f"exported model differs from the masked model by {diff:.3g} > {tolerance}")
    params_after = sum(p.numel() for p in model.parameters())
    semi = semi_structured_report(model) if _n_m(cfg) == [2, 4] else None  # 2:4: GPU sparse kernels timed, or a note on a CPU
    # auto: store each 2-D weight that is more than half zeros as CSR (only those get smaller)
    use_sparse = sparse in ("true", "auto")
    meta = {"source_checkpoint": str(ckpt_path), "merged_lora": merged, "removed": removed, "max_abs_diff": diff, "params": params_after}
    container = OmegaConf.to_container(cfg)
    payload = export_payload(model, container, use_sparse, meta)
    bytes_dense = _nbytes(export_payload(model, container, False, meta))
    with atomic_path(out_path) as tmp:  # a failed export never leaves a half-written `out`
        torch.save(payload, tmp)
    return {
        "out": str(out_path),
        "params_before": params_before,
        "params_after": params_after,
        "removed": removed,
        "sparse": use_sparse,
        "max_abs_diff": diff,
        "merged_lora": merged,
        "bytes_out": out_path.stat().st_size,
        "bytes_dense": bytes_dense,
        "semi_structured": semi,
    }


def _n_m(cfg: Any) -> list[int] | None:
    """The ``criterion.n_m`` a checkpoint was pruned with (None when unstructured or unpruned)."""
    pruning = OmegaConf.to_container(cfg, resolve=True).get("strategy", {}).get("pruning") or {}
    n_m = (pruning.get("criterion") or {}).get("n_m") if isinstance(pruning, dict) else None
    return list(n_m) if n_m else None


def load_exported(path: str, trust_remote_code: bool = False) -> nn.Module:
    """Rebuild an exported model (smaller layers, dense weights) ready for inference.

    The file's config supplies values, never what to import; ``trust_remote_code`` (let the model
    folder run its own code) comes only from the caller (:mod:`peftlab.checkpoints.safe_build`).
    """
    from peftlab.builders import build_model
    from peftlab.checkpoints.safe_build import buildable_config

    try:  # weights_only: tensors (dense and CSR) and plain containers only; opening a file runs no code
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError("path", f"{path}: no such file; pass a file written by scripts/export.py") from None
    except Exception as err:  # truncated, not a torch file, or holding objects a safe load refuses
        raise ConfigError("path", f"{path}: not a readable peftlab export ({type(err).__name__}); pass a file written by scripts/export.py") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt != FORMAT:
        raise ConfigError("path", f"{path} is not a peftlab export (format {fmt!r})")
    if not isinstance(payload.get("config"), dict):
        raise ConfigError("path", f"{path} is not a peftlab export (no 'config' entry)")
    cfg = buildable_config(payload["config"], path, "path", trust_remote_code)
    model = build_model(cfg)
    if payload.get("merged_lora"):  # exported with its adapters merged: rebuild the same plain layers
        merge_adapters(model)
    state = dense_state_dict(payload["state_dict"])
    shrink_to(model, state)
    model.load_state_dict(state)
    return model.eval()
