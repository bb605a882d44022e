"""Structured pruning's side of the prunable weights: which unit groups are pruned, and their masks.

A structured criterion (neurons, heads) removes whole units: a group is pruned when all its
producer layers are selected, and its masks zero the producers' rows (and biases) and the
selected consumers' columns of each removed unit.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.masks import get_mask
from peftlab.pruning.selection import Target
from peftlab.pruning.unit_groups import UnitGroup, find_groups
from peftlab.pruning.unit_layout import is_projection


def select_groups(model: nn.Module, unit: str, targets: list[Target], narrow: bool, key: str, adapters: Iterable = ()) -> tuple[list[UnitGroup], list[Target], set[str] | None]:
    """``(groups, targets, covered)``: the unit groups whose producers are all selected.

    Selected layers no group covers are an error, unless ``narrow`` (no ``include`` given): then
    the targets shrink to the layers the groups cover (BERT FFNs: intermediate.dense rows +
    output.dense columns; attention and pooler stay dense), and ``covered`` names them.
    """
    selected = {t.name: t for t in targets}
    groups = [g for g in find_groups(model, unit, adapters) if all(f"{n}.weight" in selected for n, _ in g.producers)]
    covered = {f"{n}.weight" for g in groups for n, _ in g.producers + g.consumers}
    bad = [f"{t.name} ({type(t.module).__name__})" for t in targets if t.name not in covered or not is_projection(t.module)]
    kept: set[str] | None = None
    if groups and bad and narrow:
        targets = [t for t in targets if t.name in covered and is_projection(t.module)]
        kept, bad = {t.name for t in targets}, []
    if not groups or bad:
        what = (
            "BERT-style self-attention (query/key/value + output.dense), Llama-style q/k/v/o_proj and GPT-2's c_attn + c_proj"
            if unit == "heads"
            else "nn.Linear layers followed by another nn.Linear (or task heads) through relu/gelu/tanh/dropout, BERT, Llama-style and GPT-2 FFNs"
        )
        raise ConfigError(
            f"{key}.criterion",
            f"structured pruning of {unit} handles {what}; it can't handle {', '.join(bad[:3]) or 'any selected layer'} — narrow {key}.include/module_types or use an unstructured criterion",
        )
    return groups, targets, kept


def group_mask_pairs(groups: list[UnitGroup]) -> list[tuple[nn.Module, str]]:
    """``(module, attr)`` of the producer weights and biases of ``groups`` (masked besides the targets)."""
    pairs: list[tuple[nn.Module, str]] = []
    for g in groups:
        pairs += [(lin, "weight") for _, lin in g.producers] + [(lin, "bias") for _, lin in g.producers if lin.bias is not None]
    return pairs


def unit_masks(groups: list[UnitGroup]) -> list[torch.Tensor]:
    """Each group's ``[n_units]`` keep-vector as its masks stand (1: unit kept)."""
    return [g.unit_view(g.producers[0][1], get_mask(g.producers[0][1], "weight")).amax(1) for g in groups]


def unit_sparsity(groups: list[UnitGroup]) -> float:
    """Fraction of the groups' units that are removed."""
    units = unit_masks(groups)
    return float(sum(int((u == 0).sum()) for u in units) / max(1, sum(u.numel() for u in units)))


def structured_masks(groups: list[UnitGroup], targets: list[Target], criterion: Any, sparsity: float) -> dict[tuple[nn.Module, str], torch.Tensor]:
    """New masks for ``sparsity`` of the units: ``{(module, attr): mask}`` of every masked tensor the groups touch."""
    keeps = criterion.unit_keep(groups, sparsity, unit_masks(groups))
    selected = {id(t.module) for t in targets if t.attr == "weight"}
    new: dict[Any, torch.Tensor] = {}

    def mul(module, attr, factor):
        key = (module, attr)
        base = new.get(key, torch.ones_like(getattr(module, attr)))
        new[key] = base * factor

    for g, keep in zip(groups, keeps):
        for _, lin in g.producers:
            mul(lin, "weight", g.producer_mask(keep, lin))
            if lin.bias is not None:
                mul(lin, "bias", g.output_keep(keep, lin))
        for _, lin in g.consumers:
            if id(lin) in selected:
                mul(lin, "weight", g.consumer_mask(keep, lin))
    return {k: v for k, v in new.items() if get_mask(*k) is not None}
