"""Base of the criteria that prune from calibration activations (Wanda, SparseGPT).

Layers are pruned in forward order, each scored from its inputs recorded with the layers before
it already pruned: the layers of a chain of transformer blocks block by block from cached block
inputs (:mod:`peftlab.pruning.blockwise`, the papers' scheme: every layer of a block scored from
the same block inputs), any other layer one at a time (:mod:`peftlab.pruning.calibration`). A
layer's mask is written into its buffer and multiplied in before later inputs are recorded.
``nn.Linear`` and Hugging Face's ``Conv1D`` (GPT-2; weight ``[in, out]``, handled transposed)
weights are supported: both criteria read the input as ``[tokens, in_features]``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.blockwise import BlockInputs, find_blocks
from peftlab.pruning.calibration import Run, forward_order, record_inputs, summed_over_ranks
from peftlab.pruning.criteria.base import Criterion
from peftlab.pruning.masks import get_mask
from peftlab.pruning.n_m import is_conv1d, rows_view
from peftlab.pruning.selection import Target


class CalibratedCriterion(Criterion):
    """Masks from calibration batches: subclasses give :meth:`new_stats`, :meth:`fold` and :meth:`layer_mask`.

    Call :meth:`calibrate_with` (the callback does, at the start of training) before masks are computed.
    """

    needs_calibration = True

    def __init__(self, n_m=None):
        self.set_n_m(n_m)
        self.run: Run | None = None
        self.batches: Sequence[Any] = ()
        self.model: nn.Module | None = None
        self.routed = False  # set by calibrate_with

    def calibrate_with(self, run: Run, batches: Sequence[Any], model: nn.Module | None = None) -> None:
        """``run(batch)``: one forward of the model (eval mode, no gradients); ``batches``: the calibration batches.

        ``model``: the module ``run`` calls, searched for a chain of blocks; None: layer by layer.
        """
        self.run, self.batches, self.model = run, list(batches), model
        # a body that reorders rows by task (task_lora) feeds its layers rows the batch's padding mask does not line up with
        self.routed = model is not None and any(getattr(m, "routes_by_task", False) for m in model.modules())

    def check_targets(self, targets: list[Target], key: str) -> None:
        """Only the ``weight`` of ``nn.Linear`` / ``Conv1D`` layers: a one-line error naming any other target."""
        for t in targets:
            if not (isinstance(t.module, nn.Linear) or is_conv1d(t.module)) or t.attr != "weight":
                raise ConfigError(
                    f"{key}.parameters" if t.attr != "weight" else f"{key}.module_types",
                    f"{self.name} reconstructs nn.Linear / Conv1D weights from their [tokens, in_features] inputs; it cannot prune {t.name} "
                    f"({type(t.module).__name__}.{t.attr}): use module_types=[Linear, Conv1D] and parameters=[weight], or exclude it",
                )
        super().check_targets(targets, key)

    def new_stats(self, width: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Empty statistics of a layer's inputs (``width`` input features)."""
        raise NotImplementedError

    def fold(self, stats: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """Add one batch's inputs ``x`` (``[tokens, in]``) to ``stats``."""
        raise NotImplementedError

    def layer_mask(self, weight: torch.Tensor, stats: dict[str, torch.Tensor], tokens: int, sparsity: float, pruned: torch.Tensor | None) -> torch.Tensor:
        """The 0/1 mask of ``weight`` (``[out, in]``, may be updated in place); ``pruned``: its current mask (zeros stay zero)."""
        raise NotImplementedError

    @torch.no_grad()
    def compute_masks(self, targets: list[Target], sparsity: float, step: int) -> list[torch.Tensor]:
        """Prune in forward order: chained blocks block by block, other layers one by one, each from already-pruned inputs."""
        if self.run is None or not self.batches:
            raise RuntimeError(f"{self.name}: no calibration data; call calibrate_with(run, batches) first")
        modules = [t.module for t in targets]
        blocks = find_blocks(self.model, modules) if self.model is not None else []
        in_block = [next((b for b, block in enumerate(blocks) if any(m is t.module for m in block.modules())), None) for t in targets]
        lone = [i for i, b in enumerate(in_block) if b is None]
        units: list[nn.Module] = [targets[i].module for i in lone] + blocks
        masks: list[torch.Tensor | None] = [None] * len(targets)
        cache: BlockInputs | None = None
        for u in forward_order(units, self.run, self.batches[0]):
            if u < len(lone):
                after_chain = cache is not None and cache.advanced == len(blocks)
                self._prune_layer(targets, lone[u], masks, sparsity, cache.replaying(self.run, self.batches) if after_chain else self.run)
                continue
            b = u - len(lone)
            if cache is None:  # the first block reached: earlier layers are pruned, record every block's inputs
                cache = BlockInputs(blocks, use_mask=not self.routed)
                if not cache.capture(self.run, self.batches):  # not a chain: layer by layer for everything left
                    rest = [i for i in range(len(targets)) if masks[i] is None]
                    for j in forward_order([targets[i].module for i in rest], self.run, self.batches[0]):
                        self._prune_layer(targets, rest[j], masks, sparsity)
                    break
            members = [i for i in range(len(targets)) if in_block[i] == b]
            if members:
                stats = [self.new_stats(rows_view(targets[i].module, targets[i].tensor).shape[1], targets[i].tensor.device) for i in members]
                folds = [lambda x, s=s: self.fold(s, x) for s in stats]
                tokens = cache.collect(b, [targets[i].module for i in members], folds)
                for i, s, n in zip(members, stats, tokens):
                    self._apply(targets, i, s, n, sparsity, masks)
            cache.advance(b)
        return masks  # type: ignore[return-value]

    def _prune_layer(self, targets: list[Target], i: int, masks: list, sparsity: float, run: Run | None = None) -> None:
        """Record target ``i``'s inputs with a forward per batch (``run``, default the model's), then prune it."""
        t = targets[i]
        stats = self.new_stats(rows_view(t.module, t.tensor).shape[1], t.tensor.device)
        tokens = record_inputs(t.module, run or self.run, self.batches, lambda x: self.fold(stats, x), use_mask=not self.routed)
        self._apply(targets, i, stats, tokens, sparsity, masks)

    def _apply(self, targets: list[Target], i: int, stats: dict, tokens: int, sparsity: float, masks: list) -> None:
        """Mask target ``i`` from its statistics (summed over DDP ranks); the mask goes into its buffer and its weight."""
        t = targets[i]
        stats = {k: summed_over_ranks(v) for k, v in stats.items()}
        tokens = int(summed_over_ranks(torch.tensor(float(tokens), device=t.tensor.device)).item())
        if tokens == 0:
            raise ConfigError(
                "strategy.pruning.module_types",
                f"{self.name}: the forward never calls {t.name}'s module (its weight is read directly, e.g. nn.MultiheadAttention.out_proj), "
                "so it has no calibration inputs; exclude it (strategy.pruning.exclude)",
            )
        current = get_mask(t.module, t.attr)
        pruned = rows_view(t.module, current) if current is not None else None
        mask = rows_view(t.module, self.layer_mask(rows_view(t.module, t.tensor), stats, tokens, sparsity, pruned)).to(t.tensor.dtype)
        if current is not None:
            current.copy_(mask)
        t.tensor.mul_(mask)  # later layers' inputs come from this pruned layer
        masks[i] = mask
