"""N:M semi-structured sparsity: exactly N of every M consecutive input weights kept per output row.

The pattern GPU sparse tensor cores accelerate (2:4). Groups run along the input dimension (the
last axis of a Linear weight ``[out, in]``); a criterion's scores pick which N of each group stay.
Written by hand (torch.nn.utils.prune has no N:M method): a topk inside each group.
"""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.errors import ConfigError


def check_n_m(n_m: Sequence[int] | None, key: str) -> tuple[int, int] | None:
    """``(N, M)`` from ``[N, M]`` (None stays None); ConfigError naming ``key`` unless 0 < N < M."""
    if n_m is None:
        return None
    values = list(n_m) if isinstance(n_m, (list, tuple)) or hasattr(n_m, "__len__") else None
    if values is None or len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ConfigError(key, f"must be [N, M] (two integers, e.g. [2, 4]) or null; got {n_m!r}")
    n, m = values
    if not 0 < n < m:
        raise ConfigError(key, f"must have 0 < N < M (keep N of every M weights); got [{n}, {m}]")
    return n, m


def check_width(n_m: tuple[int, int] | None, name: str, width: int, key: str) -> None:
    """ConfigError naming ``key`` when M does not divide the input width ``width`` of ``name``."""
    if n_m is not None and width % n_m[1]:
        raise ConfigError(key, f"M={n_m[1]} does not divide the input width {width} of {name}; pick an M that divides every pruned layer's input width, or exclude {name}")


def is_conv1d(module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer storing its weight as ``[in, out]`` (by name: importing transformers takes seconds)."""
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def rows_view(module, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as ``[out, in]`` (a view): transposed for a ``Conv1D`` weight, unchanged otherwise."""
    return tensor.t() if is_conv1d(module) and tensor.dim() == 2 else tensor


def n_m_sparsity(n_m: tuple[int, int]) -> float:
    """The sparsity an N:M pattern gives: 1 - N/M."""
    return 1.0 - n_m[0] / n_m[1]


def n_m_mask(scores: torch.Tensor, n_m: tuple[int, int], sparsity: float | None = None) -> torch.Tensor:
    """0/1 mask keeping, in each group of M consecutive entries of a row, the highest-scored ones.

    ``sparsity`` (default 1 - N/M): the fraction of each group dropped, ``round(sparsity * M)``
    entries, at most M - N; a schedule ramping up to N:M prunes fewer per group on its way.
    """
    n, m = n_m
    drop = m - n if sparsity is None else min(m - n, int(round(sparsity * m)))
    groups = scores.reshape(-1, m)
    mask = torch.ones_like(groups)
    if drop > 0:
        idx = torch.topk(groups, drop, dim=1, largest=False).indices
        mask.scatter_(1, idx, 0.0)
    return mask.view_as(scores)
