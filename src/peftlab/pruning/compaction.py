"""Export: make masks permanent, physically remove pruned neurons/heads, optionally store sparse.

A unit (neuron or attention head) whose producer rows and bias are all zero outputs 0, so
removing it — with the consumers' matching input columns — leaves every output unchanged.
That holds for units zeroed by structured pruning and for rows unstructured pruning happened to
empty. The exported file holds a plain state dict (no pickled classes) plus the training config;
:func:`load_exported` rebuilds the model from the config and shrinks it to the stored shapes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.masks import remove_masks
from peftlab.pruning.unit_groups import UnitGroup, find_groups
from peftlab.pruning.unit_layout import is_conv1d, keep_inputs, keep_outputs

FORMAT = "peftlab-export-v1"


@torch.no_grad()
def compact(model: nn.Module) -> dict[str, int]:
    """Make masks permanent and remove every all-zero unit in place. Returns units removed per kind."""
    remove_masks(model)
    removed = {"neurons": 0, "heads": 0}
    for kind in ("heads", "neurons"):
        for group in find_groups(model, kind):
            keep = _alive_units(group)
            if bool(keep.all()):
                continue
            if not bool(keep.any()):
                keep[0] = True  # keep one unit so every layer keeps a valid shape
            _shrink(group, keep)
            removed[kind] += int((~keep).sum())
    _sync_out_dims(model)
    return removed


@torch.no_grad()
def remove_heads(model: nn.Module, heads: Mapping[int, Sequence[int]]) -> int:
    """Physically remove attention heads: ``{layer index: [head indices]}``, layers in module order.

    What transformers' ``prune_heads`` did before version 5 dropped it: the heads' query/key/value
    rows and the output projection's columns go, and ``num_attention_heads`` / ``all_head_size``
    follow. A layer keeps at least one head. Pruning masks are made permanent first (as
    :func:`compact` does). Returns how many heads were removed.
    """
    groups = find_groups(model, "heads")
    removed = 0
    plan = []
    for layer, idx in heads.items():
        if not 0 <= int(layer) < len(groups):
            raise ConfigError("heads", f"layer {layer} does not exist; the model has {len(groups)} attention layers (0-{len(groups) - 1})")
        group, idx = groups[int(layer)], sorted(set(int(i) for i in idx))
        bad = [i for i in idx if not 0 <= i < group.n_units]
        if bad:
            raise ConfigError("heads", f"layer {layer} has {group.n_units} heads (0-{group.n_units - 1}); got head {bad[0]}")
        if len(idx) >= group.n_units:
            raise ConfigError("heads", f"removing {len(idx)} heads would leave layer {layer} ({group.name}) with none; at most {group.n_units - 1} of its {group.n_units} heads may go")
        plan.append((group, idx))
    remove_masks(model)
    for group, idx in plan:  # validated first: a bad entry changes nothing
        keep = torch.ones(group.n_units, dtype=torch.bool)
        keep[idx] = False
        if idx:
            _shrink(group, keep)
            removed += len(idx)
    return removed


def _alive_units(group: UnitGroup) -> torch.Tensor:
    alive = torch.zeros(group.n_units, dtype=torch.bool)
    for _, lin in group.producers:
        alive |= group.unit_view(lin, lin.weight).ne(0).any(1).cpu()
        if lin.bias is not None:
            alive |= group.unit_view(lin, lin.bias).ne(0).any(1).cpu()
    return alive


def _shrink(group: UnitGroup, keep: torch.Tensor) -> None:
    for _, lin in group.producers:  # (rows per unit may differ by layer: grouped-query attention's q vs k/v)
        keep_outputs(lin, group.output_keep(keep, lin).nonzero().squeeze(1))
    for _, lin in group.consumers:
        keep_inputs(lin, group.input_keep(keep, lin).nonzero().squeeze(1))
    owner = group.owner
    if group.kind == "heads" and owner is not None and hasattr(owner, "attention_head_size"):  # BERT's records its head count
        owner.num_attention_heads = int(keep.sum())
        owner.all_head_size = owner.num_attention_heads * owner.attention_head_size
    if group.kind == "heads" and group.sections == 3 and owner is not None:  # GPT-2's attention splits c_attn's output at split_size
        owner.num_heads, owner.split_size = int(keep.sum()), int(keep.sum()) * group.unit_size
    if group.kind == "neurons" and isinstance(getattr(owner, "intermediate_size", None), int):  # a gated FFN (Llama's MLP) records its width
        owner.intermediate_size = int(keep.sum())


def _sync_out_dims(model: nn.Module) -> None:
    """Keep ``out_dim`` attributes of peftlab backbones/bodies in line with their last linear layer."""
    for module in model.modules():
        net = getattr(module, "net", None)
        if isinstance(net, nn.Sequential) and hasattr(module, "out_dim"):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            if linears:
                module.out_dim = linears[-1].out_features
    body = getattr(model, "body", None)
    if body is not None and hasattr(body, "out_dim"):
        inner = getattr(body, "backbone", None) or next(iter(getattr(body, "backbones", {}).values()), None)
        if inner is not None:
            body.out_dim = inner.out_dim


def sparse_state_dict(state: dict[str, torch.Tensor], min_sparsity: float = 0.55) -> dict[str, torch.Tensor]:
    """2-D tensors with more than ``min_sparsity`` zeros as CSR with int32 indices (8 bytes per non-zero
    instead of 4 per entry: smaller only above ~50 % sparsity, so denser tensors stay dense)."""
    out = {}
    for k, t in state.items():
        if isinstance(t, torch.Tensor) and t.dim() == 2 and t.is_floating_point() and float((t == 0).float().mean()) > min_sparsity:
            csr = t.to_sparse_csr()
            out[k] = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), t.shape)
        else:
            out[k] = t
    return out


def dense_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Undo :func:`sparse_state_dict`."""
    return {k: (t.to_dense() if t.layout != torch.strided else t) for k, t in state.items()}


@torch.no_grad()
def shrink_to(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize ``model``'s linear layers (and attention head counts) to the shapes in ``state``."""
    for name, module in model.named_modules():
        w = state.get(f"{name}.weight")
        if isinstance(module, nn.Linear) and w is not None and tuple(w.shape) != tuple(module.weight.shape):
            module.weight = nn.Parameter(torch.empty(w.shape, dtype=module.weight.dtype))
            module.out_features, module.in_features = w.shape
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[0], dtype=module.bias.dtype))
        elif is_conv1d(module) and w is not None and tuple(w.shape) != tuple(module.weight.shape):  # GPT-2: weight [in, out]
            module.weight = nn.Parameter(torch.empty(w.shape, dtype=module.weight.dtype))
            module.nf = w.shape[1]
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[1], dtype=module.bias.dtype))
    for module in model.modules():  # attention modules: head count follows the query rows
        if hasattr(module, "num_attention_heads") and isinstance(getattr(module, "query", None), nn.Linear):
            module.num_attention_heads = module.query.out_features // module.attention_head_size
            module.all_head_size = module.query.out_features
        if is_conv1d(getattr(module, "c_attn", None)) and isinstance(getattr(module, "split_size", None), int):  # GPT-2 attention
            module.split_size = module.c_attn.nf // 3
            module.num_heads = module.split_size // module.head_dim
    _sync_out_dims(model)


def export_payload(model: nn.Module, config: Any, sparse: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """What ``scripts/export.py`` writes: format tag, config, (sparse) state dict and metadata."""
    state = {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}
    return {"format": FORMAT, "config": config, "sparse": sparse, "state_dict": sparse_state_dict(state) if sparse else state, **extra}
