"""Checkpoint → exported file and back: the I/O side of :mod:`peftlab.pruning.compaction`.

Adapters are the body's business (``PolicyBody.adapter_layers()``, ``merge_adapters()``): a body
with adapters (shared LoRA) has them merged into the masked base weights, which are then
masked again, before pruned units are removed; a body whose adapters cannot merge (task_lora:
one per task) refuses with a one-line error. A shared decoder can also be written as a
Hugging Face ``save_pretrained`` folder (:func:`export_decoder_folder`), which
``AutoModelForCausalLM.from_pretrained`` loads.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from peftlab.batch import slice_inputs
from peftlab.checkpoints.atomic_files import atomic_folder, atomic_path
from peftlab.checkpoints.safe_loading import check_state_dict_matches, load_checkpoint_safely
from peftlab.errors import ConfigError
from peftlab.models.causal_lm_body import decoders_of
from peftlab.pruning.adapter_gates import gate_pruned_rows
from peftlab.pruning.compaction import FORMAT, compact, dense_state_dict, export_payload, shrink_to
from peftlab.pruning.masks import reapply_masks
from peftlab.pruning.semi_structured import semi_structured_report
from peftlab.pruning.unit_layout import is_conv1d, out_features


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


def ffn_widths(model: nn.Module) -> list[int]:
    """The FFN width (units) of every gated FFN layer of ``model`` (Llama-style ``gate_proj`` / ``down_proj``), in order."""
    return [int(m.down_proj.in_features) for m in model.modules() if isinstance(getattr(m, "gate_proj", None), nn.Linear) and isinstance(getattr(m, "down_proj", None), nn.Linear)]


def gpt2_ffn_widths(model: nn.Module) -> list[int]:
    """The FFN width (units) of every GPT-2 MLP of ``model`` (Conv1D ``c_fc`` / ``c_proj``), in order."""
    return [out_features(m.c_fc) for m in model.modules() if is_conv1d(getattr(m, "c_fc", None)) and is_conv1d(getattr(m, "c_proj", None))]


def gpt2_heads(model: nn.Module) -> list[int]:
    """The head count of every GPT-2 attention layer of ``model`` (fused Conv1D ``c_attn``), in order."""
    return [out_features(m.c_attn) // 3 // m.head_dim for m in model.modules() if is_conv1d(getattr(m, "c_attn", None)) and isinstance(getattr(m, "head_dim", None), int)]


def attention_heads(model: nn.Module) -> list[tuple[int, int, int]]:
    """``(query heads, key/value heads, head_dim)`` of every Llama-style attention layer of ``model``, in order."""
    out = []
    for m in model.modules():
        q, k, hd = getattr(m, "q_proj", None), getattr(m, "k_proj", None), getattr(m, "head_dim", None)
        if isinstance(q, nn.Linear) and isinstance(k, nn.Linear) and isinstance(hd, int):
            out.append((q.out_features // hd, k.out_features // hd, hd))
    return out


@torch.no_grad()
def export_decoder_folder(model: nn.Module, out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the shared decoder of ``model`` (a MultiTaskModule on ``model=hf_causal_lm``) as a
    ``save_pretrained`` folder that ``AutoModelForCausalLM.from_pretrained`` loads.

    A shared LoRA is merged into the (masked) base weights first; masks become permanent and
    pruned FFN units of gated FFNs (Llama, Mistral, Qwen2) and pruned key/value head groups are
    removed; the folder's config gets the new ``intermediate_size`` / ``num_attention_heads`` /
    ``num_key_value_heads`` (and an explicit ``head_dim``); GPT-2's pruned FFN units (Conv1D c_fc / c_proj)
    give ``n_inner``. GPT-2 with removed heads is refused (its config derives the head size from
    ``n_embd / n_head``). Transformers' config holds one size for
    every layer, so pruning that left layers of different sizes is refused with one line (``scripts/export.py``
    keeps peftlab's format, which holds any shapes). What the folder holds is the decoder with
    its LM head: classification / regression heads are not part of it. task_lora (one adapter
    per task) is refused (export each task's adapter instead); so are ``separate`` decoders. ``model`` is
    changed in place (adapters merged, masks made permanent, units removed).
    """
    decoders = decoders_of(model.body)
    if not decoders:
        raise ConfigError("ckpt_path", "no decoder with an LM head to export (model=hf_causal_lm); use scripts/export.py")
    if len({id(d) for d in decoders.values()}) > 1:
        raise ConfigError("ckpt_path", "strategy=separate has one decoder per task and a save_pretrained folder holds one; use scripts/export.py without format=hf (peftlab's format)")
    out = Path(out_dir)
    out = out.resolve()  # (`out=.` has no name to put a temp folder beside)
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} is a file; format=hf writes a folder: choose another path")
    if Path.cwd().resolve().is_relative_to(out):  # the folder is replaced whole: never the one we stand in
        raise ConfigError("out", f"{out} holds the current directory; format=hf replaces its folder whole: choose a new folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError("out", f"{out} exists and is not empty; pass overwrite=true or choose another directory")
        if not (out / "config.json").is_file() or (out / "checkpoints").exists():  # only ever an earlier export, never a run dir
            raise ConfigError("out", f"{out} is not an earlier format=hf export (no config.json, or it holds checkpoints); overwrite=true replaces only such a folder")
    decoder = next(iter(decoders.values()))
    merged = merge_adapters(model)  # task_lora: refused here (one adapter per task cannot merge)
    removed = compact(model)
    config = decoder.model.config
    gpt2_widths = sorted(set(gpt2_ffn_widths(decoder.model)))
    if any(h != config.n_head for h in gpt2_heads(decoder.model)):  # GPT2Attention: head_dim = n_embd // n_head, split_size = n_embd
        raise ConfigError(
            "format",
            "GPT-2's config has no head size apart from n_embd / n_head, so a GPT-2 with removed heads can't be a save_pretrained folder: use scripts/export.py without format=hf (peftlab's format)",
        )
    widths = sorted(set(ffn_widths(decoder.model))) or gpt2_widths
    if len(widths) > 1:
        raise ConfigError(
            "out", f"pruning left FFN layers of different widths {widths}; a transformers config holds one intermediate_size (GPT-2: n_inner): export with scripts/export.py (peftlab's format) instead"
        )
    heads = sorted(set(attention_heads(decoder.model)))
    if len(heads) > 1:
        counts = [f"{q}/{kv}" for q, kv, _ in heads]
        raise ConfigError(
            "out", f"pruning left attention layers with different query/key-value head counts {counts}; a transformers config holds one: export with scripts/export.py (peftlab's format) instead"
        )
    if widths and gpt2_widths:
        config.n_inner = widths[0]  # GPT2Config's FFN width (null: 4 x n_embd)
    elif widths:
        config.intermediate_size = widths[0]
    if heads:
        config.head_dim, config.num_attention_heads, config.num_key_value_heads = heads[0][2], heads[0][0], heads[0][1]
    with atomic_folder(out) as tmp:  # written beside `out` and moved into place: a failure leaves nothing half-written
        decoder.model.save_pretrained(str(tmp))
    sizes = {"intermediate_size": widths[0] if widths else None, "heads": heads[0][:2] if heads else None}
    return {"out": str(out), "merged_lora": merged, "removed": removed, **sizes, "params": sum(p.numel() for p in decoder.model.parameters())}


@torch.no_grad()
def export_checkpoint_folder(ckpt_path: str, out: str, overwrite: bool = False, tolerance: float = 1e-5, trust_remote_code: bool = False) -> dict[str, Any]:
    """:func:`export_decoder_folder` of a checkpoint's masked model; then transformers loads the folder
    and its token logits on test inputs must equal the masked model's within ``tolerance`` (else the
    folder is removed and RuntimeError says by how much)."""
    from transformers import AutoModelForCausalLM

    from peftlab.checkpoints.stored_config import load_buildable_config

    load_buildable_config(ckpt_path, trust_remote_code)  # a bad or crafted ckpt_path fails first
    model, _, datamodule = load_masked_model(ckpt_path, trust_remote_code)
    decoders = decoders_of(model.body)
    x = _sample_inputs(datamodule, 64)
    inputs = {k: x[k] for k in ("input_ids", "attention_mask")} if isinstance(x, dict) else None
    if not decoders or inputs is None:
        raise ConfigError("ckpt_path", "no decoder with an LM head to export (model=hf_causal_lm); use scripts/export.py without format=hf")
    reference = next(iter(decoders.values())).model(**inputs).logits.float()
    info = export_decoder_folder(model, out, overwrite)
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    diff = float((loaded(**inputs).logits.float() - reference).abs().max())
    if diff > tolerance:
        shutil.rmtree(out)
        raise RuntimeError(f"the exported folder's logits differ from the masked model's by {diff:.3g} > {tolerance}")
    return {**info, "max_abs_diff": diff}
