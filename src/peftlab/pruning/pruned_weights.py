"""The weights one pruning schedule masks, and everything done to them: select, mask, update, measure.

:class:`PrunedWeights` is what a :class:`peftlab.callbacks.pruning.PruningCallback` prunes, kept
apart from the Lightning hooks so it is usable (and tested) without a Trainer.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.adapter_gates import gate_pruned_rows
from peftlab.pruning.criteria.structured import units_to_drop
from peftlab.pruning.masks import apply_masks, attach_mask, get_mask, mask_gradients
from peftlab.pruning.selection import Target, select_targets
from peftlab.pruning.structured_targets import group_mask_pairs, select_groups, structured_masks, unit_sparsity
from peftlab.pruning.unit_groups import UnitGroup, find_groups


class PrunedWeights:
    """Prunable targets (and unit groups, for a structured criterion) of a model, with their masks.

    Args:
        criterion: the :class:`~peftlab.pruning.criteria.Criterion` that computes masks.
        selection: :func:`~peftlab.pruning.selection.select_targets`'s arguments (scope,
            module_types, include, exclude, parameters).
        key: config prefix named in error messages.
    """

    def __init__(self, criterion: Any, selection: dict[str, Any], key: str):
        self.criterion, self.selection, self.key = criterion, selection, key
        self.targets: list[Target] = []
        self.groups: list[UnitGroup] = []
        self.masked: list[tuple[nn.Module, str]] = []
        self.hooks: list[torch.utils.hooks.RemovableHandle] = []  # gradient masks and adapter gates
        self.covered: set[str] | None = None  # structured, include null: the selected weights unit groups cover

    def select(self, model: nn.Module, adapter_modules: Iterable[nn.Module] = ()) -> list[Target]:
        """The selected targets of ``model`` (the adapters' own modules are never prunable)."""
        return select_targets(model, key=self.key, skip=adapter_modules, **self.selection)

    def attach(self, model: nn.Module, adapters: Sequence = (), adapter_modules: Sequence[nn.Module] = (), final_sparsity: float = 0.0) -> None:
        """Select what is prunable and give it mask buffers (kept if a checkpoint already loaded some).

        ``adapters``/``adapter_modules``: the body's ``adapter_layers()``/``adapter_modules()``;
        each adapter layer gets a gate that zeroes its update of a pruned unit.
        """
        structured = self.criterion.structured
        unit = self.criterion.unit if structured else None
        if structured and not find_groups(model, unit, adapters):
            try:  # the model has no units of that kind: say so, naming the selected layer types
                targets = self.select(model, adapter_modules)
            except ConfigError:
                targets = []
            select_groups(model, unit, targets, False, self.key, adapters)  # raises
        self.targets = self.select(model, adapter_modules)
        pairs: list[tuple[nn.Module, str]] = []
        if structured:
            narrow = self.selection["include"] is None
            self.groups, self.targets, covered = select_groups(model, unit, self.targets, narrow, self.key, adapters)
            self.covered = covered if covered is not None else self.covered
            for g in self.groups:
                units_to_drop(g, final_sparsity)  # e.g. all heads of a layer: one-line error now, not mid-run
            pairs = group_mask_pairs(self.groups)
        for handle in self.hooks:  # attached again (a second fit): one hook per parameter and layer
            handle.remove()
        self.hooks, self.masked, seen = [], [], set()
        for module, attr in [(t.module, t.attr) for t in self.targets] + pairs:
            if (id(module), attr) not in seen:
                seen.add((id(module), attr))
                attach_mask(module, attr)
                self.masked.append((module, attr))
                handle = mask_gradients(module, attr)
                if handle is not None:
                    self.hooks.append(handle)
        self.hooks += gate_pruned_rows(adapters)  # an adapter's update of a pruned unit is zeroed too

    def prunable_parameters(self, model: nn.Module, adapter_modules: Iterable[nn.Module] = ()) -> list[tuple[str, torch.Tensor]]:
        """(name, effective weight) of every prunable weight: what ``params.sparsity`` counts."""
        out = []
        for t in self.select(model, adapter_modules):
            if self.covered is not None and t.name not in self.covered:
                continue
            mask = get_mask(t.module, t.attr)
            out.append((t.name, t.tensor.detach() * mask if mask is not None else t.tensor.detach()))
        return out

    @torch.no_grad()
    def update(self, sparsity: float, step: int = 0) -> None:
        """Recompute every mask for ``sparsity`` and zero the pruned entries."""
        if self.criterion.structured:
            for (module, attr), mask in structured_masks(self.groups, self.targets, self.criterion, sparsity).items():
                get_mask(module, attr).copy_(mask)
        else:
            for t, mask in zip(self.targets, self.criterion.compute_masks(self.targets, sparsity, step)):
                get_mask(t.module, t.attr).copy_(mask)
        apply_masks(self.masked)

    def apply(self) -> None:
        """Re-zero the pruned entries (after an optimizer step)."""
        apply_masks(self.masked)

    def measured_sparsity(self) -> float:
        """Zeros / entries over the prunable weights (structured: fraction of units removed)."""
        if self.criterion.structured:
            return unit_sparsity(self.groups)
        zeros = sum(int((t.tensor == 0).sum()) for t in self.targets)
        return zeros / max(1, sum(t.tensor.numel() for t in self.targets))

    def masks(self) -> list[torch.Tensor]:
        """Every mask, in attach order."""
        return [get_mask(m, a) for m, a in self.masked]

    @torch.no_grad()
    def mask_optimizer_state(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Zero the optimizer's per-entry state (Adam's moments, SGD's momentum) of pruned entries.

        Gradients of pruned entries are masked, so their state stays zero once it is zero; this
        clears what a weight accumulated before it was pruned, so a pruned weight gets no
        update from its old momentum either.
        """
        for optimizer in optimizers:
            for module, attr in self.masked:
                param = getattr(module, attr)
                state = optimizer.state.get(param, {})
                for value in state.values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value.mul_(get_mask(module, attr).to(value.dtype))

    def snapshot(self) -> list[torch.Tensor]:
        """A copy of the targets' weights (lottery-ticket rewinding)."""
        return [t.tensor.detach().clone() for t in self.targets]

    @torch.no_grad()
    def rewind(self, weights: list[torch.Tensor]) -> None:
        """Reset the targets to ``weights`` (a :meth:`snapshot`), keeping the pruned entries zero."""
        for t, w in zip(self.targets, weights):
            t.tensor.copy_(w * get_mask(t.module, t.attr))
