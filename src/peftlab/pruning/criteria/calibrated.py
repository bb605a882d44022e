"""Base of the criteria that prune from calibration activations (Wanda, SparseGPT).

Layers are pruned one at a time in forward order; each is scored from its inputs recorded with
the layers before it already pruned (:mod:`peftlab.pruning.calibration`), and its mask is
written into its buffer and multiplied in before the next layer's inputs are recorded. Only
``nn.Linear`` weights are supported: both criteria read the input as ``[tokens, in_features]``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.pruning.calibration import Run, forward_order, record_inputs, summed_over_ranks
from peftlab.pruning.criteria.base import Criterion
from peftlab.pruning.masks import get_mask
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

    def calibrate_with(self, run: Run, batches: Sequence[Any]) -> None:
        """``run(batch)``: one forward of the model (eval mode, no gradients); ``batches``: the calibration batches."""
        self.run, self.batches = run, list(batches)

    def check_targets(self, targets: list[Target], key: str) -> None:
        """Only the ``weight`` of ``nn.Linear`` layers: a one-line error naming any other target."""
        for t in targets:
            if not isinstance(t.module, nn.Linear) or t.attr != "weight":
                raise ConfigError(
                    f"{key}.parameters" if t.attr != "weight" else f"{key}.module_types",
                    f"{self.name} reconstructs nn.Linear weights from their [tokens, in_features] inputs; it cannot prune {t.name} "
                    f"({type(t.module).__name__}.{t.attr}): use module_types=[Linear] and parameters=[weight], or exclude it",
                )
        super().check_targets(targets, key)

    def new_stats(self, target: Target) -> dict[str, torch.Tensor]:
        """Empty statistics of ``target``'s inputs."""
        raise NotImplementedError

    def fold(self, stats: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """Add one batch's inputs ``x`` (``[tokens, in]``) to ``stats``."""
        raise NotImplementedError

    def layer_mask(self, target: Target, stats: dict[str, torch.Tensor], tokens: int, sparsity: float, pruned: torch.Tensor | None) -> torch.Tensor:
        """The 0/1 mask of ``target`` (may update its weight); ``pruned``: its current mask (zeros stay zero)."""
        raise NotImplementedError

    @torch.no_grad()
    def compute_masks(self, targets: list[Target], sparsity: float, step: int) -> list[torch.Tensor]:
        """Prune layer after layer in forward order, each from inputs recorded with the earlier ones pruned."""
        if self.run is None or not self.batches:
            raise RuntimeError(f"{self.name}: no calibration data; call calibrate_with(run, batches) first")
        order = forward_order([t.module for t in targets], self.run, self.batches[0])
        masks: list[torch.Tensor | None] = [None] * len(targets)
        for i in order:
            t = targets[i]
            stats = self.new_stats(t)
            tokens = record_inputs(t.module, self.run, self.batches, lambda x, s=stats: self.fold(s, x))
            stats = {k: summed_over_ranks(v) for k, v in stats.items()}
            tokens = int(summed_over_ranks(torch.tensor(float(tokens), device=t.tensor.device)).item())
            if tokens == 0:
                raise ConfigError(
                    "strategy.pruning.module_types",
                    f"{self.name}: the forward never calls {t.name}'s module (its weight is read directly, e.g. nn.MultiheadAttention.out_proj), "
                    "so it has no calibration inputs; exclude it (strategy.pruning.exclude)",
                )
            current = get_mask(t.module, t.attr)
            mask = self.layer_mask(t, stats, tokens, sparsity, current).to(t.tensor.dtype)
            if current is not None:
                current.copy_(mask)
            t.tensor.mul_(mask)  # the next layers' inputs come from this pruned layer
            masks[i] = mask
        return masks  # type: ignore[return-value]
