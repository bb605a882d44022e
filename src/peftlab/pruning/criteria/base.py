"""The small base every pruning criterion implements: ``compute_masks``.

Like torch.nn.utils.prune, a criterion only decides *which* entries to zero; the callback owns
the schedule and applies the masks. Unstructured criteria score every weight (per layer or
across layers); structured criteria score whole units (see :mod:`peftlab.pruning.unit_groups`).
Targets never compound: ``sparsity`` is the fraction of all entries that end up zero, and
entries already pruned stay pruned (they get the lowest score).
"""

from __future__ import annotations

from typing import Any

import torch

from peftlab.errors import ConfigError
from peftlab.pruning.masks import get_mask
from peftlab.pruning.n_m import check_n_m, check_width, n_m_mask, rows_view
from peftlab.pruning.selection import Target


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A 0/1 mask shaped like ``scores`` with its ``k`` lowest entries zeroed.

    Same arithmetic as torch.nn.utils.prune.L1Unstructured.compute_mask (topk, largest=False),
    so masks agree with torch's for the same scores and amount.
    """
    mask = torch.ones_like(scores)
    if k > 0:
        idx = torch.topk(scores.reshape(-1), k=k, largest=False).indices
        mask.view(-1)[idx] = 0
    return mask


def amount_to_k(sparsity: float, n: int) -> int:
    """How many of ``n`` entries to zero for ``sparsity`` (torch.nn.utils.prune's rounding)."""
    return int(round(sparsity * n))


class Criterion:
    """Base class. ``structured`` criteria work on unit groups, the others on weights."""

    name = "base"
    structured = False
    scope = "layer"  # "layer": each layer reaches the sparsity; "global": all layers together
    uses_gradients = False  # True: on_gradients is called before every optimizer step
    n_m: tuple[int, int] | None = None  # N:M semi-structured: keep N of every M consecutive input weights per row
    needs_calibration = False  # True: masks come from calibration batches (calibrate_with before update_masks)

    def set_n_m(self, n_m, key: str = "strategy.pruning.criterion.n_m") -> None:
        """Take ``n_m`` ([N, M] or None); a one-line error for N >= M or a criterion that cannot do it."""
        self.n_m = check_n_m(n_m, key)
        if self.n_m is not None and (self.structured or self.scope == "global"):
            what = "structured (whole units)" if self.structured else "global (one ranking across layers)"
            raise ConfigError(key, f"N:M applies to unstructured per-layer criteria (magnitude, movement, wanda, sparsegpt); {self.name} is {what}: set n_m=null")

    def check_targets(self, targets: list[Target], key: str) -> None:
        """One-line errors for targets this criterion cannot prune (N:M: M must divide each input width)."""
        for t in targets:
            if self.n_m is not None:
                rows = rows_view(t.module, t.tensor)  # a Conv1D weight's input axis is its first
                check_width(self.n_m, t.name, rows.shape[-1] if rows.dim() > 1 else rows.numel(), f"{key}.criterion.n_m")

    def scores(self, targets: list[Target], step: int) -> list[torch.Tensor]:
        """Importance of each entry of each target (higher = kept longer)."""
        raise NotImplementedError

    def compute_masks(self, targets: list[Target], sparsity: float, step: int) -> list[torch.Tensor]:
        """New 0/1 masks, one per target, with ``sparsity`` of the entries zero (per layer or global)."""
        scores = []
        for t, s in zip(targets, self.scores(targets, step)):
            s = s.detach().float().clone()
            current = get_mask(t.module, t.attr)
            if current is not None:
                s[current == 0] = float("-inf")  # already pruned stays pruned
            scores.append(s)
        if self.scope == "global":
            flat = torch.cat([s.reshape(-1) for s in scores])
            mask = lowest_k_mask(flat, amount_to_k(sparsity, flat.numel()))
            return [m.view_as(s) for m, s in zip(torch.split(mask, [s.numel() for s in scores]), scores)]
        if self.n_m is not None:  # per row, within each group of M consecutive input weights
            return [rows_view(t.module, n_m_mask(rows_view(t.module, s), self.n_m, sparsity)) for t, s in zip(targets, scores)]
        return [lowest_k_mask(s, amount_to_k(sparsity, s.numel())) for s in scores]

    def on_gradients(self, targets: list[Target]) -> None:
        """Called before every optimizer step with synchronised gradients (movement uses it)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (e.g. accumulated scores)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
