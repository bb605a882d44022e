"""Units structured pruning removes: neurons (rows of a linear layer; a gated FFN's gate + up rows; GPT-2's
c_fc columns) and attention heads (BERT's; a Llama-style layer's key/value heads, each with the query heads
that read it; GPT-2's heads inside its fused c_attn).

A :class:`UnitGroup` is a set of output units produced by some linear layers (rows; their
biases) and read by others (input columns). Zeroing a unit's rows and bias makes its output 0
— and relu/gelu/tanh/silu of 0 is 0 — so the readers' columns see only zeros: masked and
physically removed units give the same outputs. A linear layer wrapped by an adapter layer
(``adapters``: the body's ``adapter_layers()``) counts as the base layer it wraps. Found by
walking the module tree, because no
library (torch-pruning aside, which is not a dependency) maps HF BERT layers and plain
``nn.Sequential`` MLPs to such groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import nn

from peftlab.pruning.unit_layout import as_rows, in_features, is_conv1d, is_projection, out_features

# modules that map 0 to 0 element-wise; anything else between two linear layers breaks a group
ZERO_PRESERVING = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.LeakyReLU, nn.Dropout, nn.Identity)


@dataclass
class UnitGroup:
    """``n_units`` units of ``unit_size`` rows each, in ``producers`` (rows) and ``consumers`` (columns)."""

    name: str
    kind: str  # "neurons" | "heads"
    n_units: int
    unit_size: int
    producers: list[tuple[str, nn.Linear]]
    consumers: list[tuple[str, nn.Linear]] = field(default_factory=list)
    owner: nn.Module | None = None  # module whose size attributes change on export (attention, backbone)
    sections: int = 1  # producers' outputs are this many concatenated blocks of units (GPT-2's c_attn: q | k | v = 3)

    def unit_view(self, layer: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
        """A producer's weight-shaped (or bias-shaped) ``tensor`` as ``[n_units, -1]``: each unit's output
        rows (Conv1D: columns), from every section of a fused layer."""
        rows = as_rows(tensor, layer) if tensor.dim() == 2 else tensor[:, None]
        if self.sections > 1:
            return rows.reshape(self.sections, self.n_units, -1).transpose(0, 1).reshape(self.n_units, -1)
        return rows.reshape(self.n_units, -1)

    def unit_scores(self) -> torch.Tensor:
        """L2 norm of each unit over its producer rows, biases and consumer columns."""
        sq = torch.zeros(self.n_units)
        for _, lin in self.producers:
            w = self.unit_view(lin, lin.weight.detach().float()).pow(2).sum(1)
            if lin.bias is not None:
                w = w + self.unit_view(lin, lin.bias.detach().float()).pow(2).sum(1)
            sq += w.cpu()
        for _, lin in self.consumers:
            cols = as_rows(lin.weight.detach().float(), lin).t().reshape(self.n_units, -1)
            sq += cols.pow(2).sum(1).cpu()
        return sq.sqrt()

    def row_keep(self, unit_keep: torch.Tensor, width: int | None = None, sections: int = 1) -> torch.Tensor:
        """Unit keep-vector (``[n_units]`` of 0/1) expanded to the rows (or columns) of a layer of
        ``width`` rows (columns): ``width / n_units`` per unit (None: ``unit_size``), in each of
        ``sections`` concatenated blocks. Under grouped-query attention a unit is one key/value head:
        its query rows are ``heads per group`` times its key rows."""
        per_unit = self.unit_size if width is None else width // sections // self.n_units
        return unit_keep.repeat_interleave(per_unit).repeat(sections)

    def output_keep(self, unit_keep: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """``unit_keep`` over a producer's output units (all its sections)."""
        return self.row_keep(unit_keep, out_features(layer), self.sections)

    def input_keep(self, unit_keep: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """``unit_keep`` over a consumer's inputs."""
        return self.row_keep(unit_keep, in_features(layer))

    def producer_mask(self, unit_keep: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """A factor broadcasting over a producer's weight: its kept units' rows (Conv1D: columns)."""
        keep = self.output_keep(unit_keep, layer)
        return keep[None, :] if is_conv1d(layer) else keep[:, None]

    def consumer_mask(self, unit_keep: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """A factor broadcasting over a consumer's weight: its kept units' input columns (Conv1D: rows)."""
        keep = self.input_keep(unit_keep, layer)
        return keep[:, None] if is_conv1d(layer) else keep[None, :]


def find_groups(model: nn.Module, kind: str, adapters: Iterable = ()) -> list[UnitGroup]:
    """Every neuron group (``kind="neurons"``) or attention-head group (``kind="heads"``) in ``model``.

    ``adapters``: adapter layers of the model (``.layer`` wrapping ``.base`` at ``.base_attr``,
    as ``PolicyBody.adapter_layers()`` gives them); a wrapped linear layer counts as its base.
    """
    wrapped = {a.layer: (a.base_attr, a.base) for a in adapters}
    return _head_groups(model, wrapped) if kind == "heads" else _neuron_groups(model, wrapped)


def base_linear(module: nn.Module | None, name: str, wrapped: Mapping[nn.Module, tuple[str, nn.Module]]) -> tuple[str, nn.Linear] | None:
    """``(name, module)`` for an ``nn.Linear`` (or GPT-2's ``Conv1D``); for an adapter layer wrapping one, its base layer.

    Pruning acts on the frozen base weights; the adapters' updates of pruned units are zeroed by
    :func:`peftlab.pruning.adapter_gates.gate_pruned_rows` and re-masked when merged.
    """
    if is_projection(module):
        return name, module
    attr, base = wrapped.get(module, ("", None))
    if is_projection(base):
        return f"{name}.{attr}", base
    return None


def _head_groups(model: nn.Module, wrapped: Mapping) -> list[UnitGroup]:
    groups = []
    for name, mod in model.named_modules():
        attn, out = getattr(mod, "self", None), getattr(mod, "output", None)
        if attn is None or out is None or not hasattr(attn, "attention_head_size"):
            continue
        producers = [base_linear(getattr(attn, a, None), f"{name}.self.{a}", wrapped) for a in ("query", "key", "value")]
        consumer = base_linear(getattr(out, "dense", None), f"{name}.output.dense", wrapped)
        if consumer is None or any(p is None for p in producers):
            continue
        heads, size = attn.num_attention_heads, attn.attention_head_size
        groups.append(UnitGroup(f"{name}.self", "heads", heads, size, producers, [consumer], owner=attn))
    groups += [g for name, mod in model.named_modules() if (g := _kv_group_heads(mod, name, wrapped)) is not None]
    return groups + [g for name, mod in model.named_modules() if (g := _fused_qkv_heads(mod, name, wrapped)) is not None]


def _fused_qkv_heads(attn: nn.Module, name: str, wrapped: Mapping) -> UnitGroup | None:
    """GPT-2 self-attention: ``c_attn`` (Conv1D, outputs q | k | v, ``n_embd`` each) and ``c_proj``.
    Head ``h`` is columns ``h*d:(h+1)*d`` of each of c_attn's three sections (and its bias entries)
    and rows ``h*d:(h+1)*d`` of c_proj. A zero head attends uniformly over zero values: it adds 0."""
    c_attn, c_proj = (base_linear(getattr(attn, a, None), f"{name}.{a}", wrapped) for a in ("c_attn", "c_proj"))
    heads, head_dim = getattr(attn, "num_heads", None), getattr(attn, "head_dim", None)
    if c_attn is None or c_proj is None or not is_conv1d(c_attn[1]) or getattr(attn, "is_cross_attention", True):
        return None
    if not isinstance(heads, int) or not isinstance(head_dim, int) or out_features(c_attn[1]) != 3 * heads * head_dim:
        return None
    return UnitGroup(name, "heads", heads, head_dim, [c_attn], [c_proj], owner=attn, sections=3)


def _kv_group_heads(attn: nn.Module, name: str, wrapped: Mapping) -> UnitGroup | None:
    """Llama-style attention (q/k/v/o projections, ``head_dim``; grouped-query when there are fewer
    key/value heads than query heads): one unit per key/value head, i.e. that head's k and v rows,
    the query heads that share it (contiguous rows of q: query head ``h`` reads key/value head
    ``h // heads_per_group``) and their columns of o. A zero unit's queries and keys give uniform
    attention over zero values: its heads add exactly 0 through o, as if removed. Heads are removed
    whole groups at a time, so every remaining query head keeps its own key/value head."""
    layers = [base_linear(getattr(attn, a, None), f"{name}.{a}", wrapped) for a in ("q_proj", "k_proj", "v_proj", "o_proj")]
    head_dim = getattr(attn, "head_dim", None)
    if any(x is None for x in layers) or not isinstance(head_dim, int) or layers[1][1].out_features % head_dim:
        return None
    q, k, v, o = layers
    kv_heads = k[1].out_features // head_dim
    if kv_heads < 1 or q[1].out_features % kv_heads or v[1].out_features != k[1].out_features:
        return None
    return UnitGroup(f"{name}", "heads", kv_heads, head_dim, [q, k, v], [o], owner=attn)


def _neuron_groups(model: nn.Module, wrapped: Mapping) -> list[UnitGroup]:
    groups = []
    names = {m: n for n, m in model.named_modules()}
    for name, mod in model.named_modules():
        inter, out = getattr(mod, "intermediate", None), getattr(mod, "output", None)
        producer = base_linear(getattr(inter, "dense", None), f"{name}.intermediate.dense", wrapped)
        consumer = base_linear(getattr(out, "dense", None), f"{name}.output.dense", wrapped)
        if producer is not None and consumer is not None:  # BERT FFN: dense → intermediate_act_fn (gelu(0) = 0) → output.dense
            groups.append(UnitGroup(f"{name}.intermediate.dense", "neurons", producer[1].out_features, 1, [producer], [consumer]))
        for ffn in (_swiglu_group(mod, name, wrapped), _conv1d_ffn_group(mod, name, wrapped)):
            if ffn is not None:
                groups.append(ffn)
        if isinstance(mod, nn.Sequential):
            groups += _sequential_groups(mod, name, _tail_consumers(model, mod, names))
    return groups


def _swiglu_group(mlp: nn.Module, name: str, wrapped: Mapping) -> UnitGroup | None:
    """A Llama-style gated FFN ``down(act(gate(x)) * up(x))`` (Llama, Mistral, Qwen2): unit ``i`` is
    row ``i`` of gate and of up and column ``i`` of down. Zeroing both rows makes the product 0
    (silu(0) = 0, and 0 times anything), so down's column ``i`` reads only zeros."""
    gate, up, down = (base_linear(getattr(mlp, a, None), f"{name}.{a}", wrapped) for a in ("gate_proj", "up_proj", "down_proj"))
    if gate is None or up is None or down is None or gate[1].out_features != up[1].out_features:
        return None
    return UnitGroup(f"{name}.gate_proj", "neurons", gate[1].out_features, 1, [gate, up], [down], owner=mlp)


def _conv1d_ffn_group(mlp: nn.Module, name: str, wrapped: Mapping) -> UnitGroup | None:
    """GPT-2's FFN ``c_proj(act(c_fc(x)))`` with Conv1D layers: unit ``i`` is column ``i`` of c_fc (and
    its bias entry) and row ``i`` of c_proj; act (gelu_new, relu, silu, ...) maps 0 to 0."""
    c_fc, c_proj = (base_linear(getattr(mlp, a, None), f"{name}.{a}", wrapped) for a in ("c_fc", "c_proj"))
    if c_fc is None or c_proj is None or not is_conv1d(c_fc[1]) or out_features(c_fc[1]) != in_features(c_proj[1]):
        return None
    return UnitGroup(f"{name}.c_fc", "neurons", out_features(c_fc[1]), 1, [c_fc], [c_proj], owner=mlp)


def _sequential_groups(seq: nn.Sequential, name: str, tail: list[tuple[str, nn.Linear]]) -> list[UnitGroup]:
    """Linear → zero-preserving modules → Linear chains; the last linear feeds ``tail`` (e.g. task heads)."""
    groups, pending = [], None
    for i, sub in enumerate(seq):
        if isinstance(sub, nn.Linear):
            if pending is not None:
                pname, plin = pending
                groups.append(UnitGroup(pname, "neurons", plin.out_features, 1, [pending], [(f"{name}.{i}", sub)]))
            pending = (f"{name}.{i}", sub)
        elif not isinstance(sub, ZERO_PRESERVING + (nn.Flatten,)) or (isinstance(sub, nn.Flatten) and pending is not None):
            pending = None
    if pending is not None and tail:
        groups.append(UnitGroup(pending[0], "neurons", pending[1].out_features, 1, [pending], list(tail), owner=seq))
    return groups


def _tail_consumers(model: nn.Module, seq: nn.Sequential, names: dict) -> list[tuple[str, nn.Linear]]:
    """The task heads reading a peftlab backbone's output (``model.body.backbone(s).net``), if ``seq`` is one."""
    body, heads = getattr(model, "body", None), getattr(getattr(model, "heads", None), "heads", None)
    if body is None or heads is None:
        return []
    if getattr(getattr(body, "backbone", None), "net", None) is seq:
        return [(names[h], h) for h in heads.values()]
    for task, backbone in getattr(body, "backbones", {}).items() if hasattr(body, "backbones") else []:
        if getattr(backbone, "net", None) is seq and task in heads:
            return [(names[heads[task]], heads[task])]
    return []
