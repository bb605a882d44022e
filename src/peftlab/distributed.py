"""DDP helpers: world size, rank and in-place all-reduces that are no-ops without torch.distributed."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of DDP ranks (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's DDP rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` over DDP ranks (in place, also for a non-contiguous view; a no-op without DDP). Returns ``t``."""
    n = world_size()
    if n > 1:
        _all_reduce_in_place(t)
        t.div_(n)
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over DDP ranks (in place, also for a non-contiguous view; a no-op without DDP). Returns ``t``."""
    if world_size() > 1:
        _all_reduce_in_place(t)
    return t


def _all_reduce_in_place(t: torch.Tensor) -> None:
    # gloo reduces a non-contiguous view (e.g. rows[:, k:]) wrongly and without an error
    # (measured: rank 1 unchanged, rank 0 scrambled), so reduce a contiguous copy and write it back
    if t.is_contiguous():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    else:
        buf = t.contiguous()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        t.copy_(buf)
