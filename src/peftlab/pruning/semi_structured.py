"""2:4 weights on a GPU's sparse tensor cores at export: ``torch.sparse.to_sparse_semi_structured``, timed.

A model pruned with ``n_m: [2, 4]`` keeps the pattern through export; on a CUDA device each 2:4
linear weight is converted (half precision, as the kernels need) and one matmul on it is timed
against the dense one, side by side, so the export reports a measured speed-up. torch only has
these kernels for CUDA, so on a CPU the conversion is skipped with a note. Uses torch's own
conversion; nothing is written by hand but the timing loop.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from peftlab.pruning.n_m import rows_view

NO_GPU = "skipped: torch.sparse.to_sparse_semi_structured runs on CUDA GPUs only (this export ran on a CPU); the 2:4 pattern is kept in the weights"


def is_2_4(weight: torch.Tensor) -> bool:
    """Whether every group of 4 consecutive inputs of every row keeps at most 2 non-zeros."""
    return weight.dim() == 2 and weight.shape[1] % 4 == 0 and bool(((weight != 0).reshape(-1, 4).sum(1) <= 2).all())


def _median_ms(fn, repeats: int = 20) -> float:
    """Median wall time of ``fn()`` in ms on the GPU (synchronised)."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def semi_structured_report(model: nn.Module, tokens: int = 4096) -> dict[str, Any]:
    """For a model with 2:4 linear weights: per-layer dense vs semi-structured matmul time on CUDA, or the CPU note."""
    layers = [(n, m) for n, m in model.named_modules() if hasattr(m, "weight") and isinstance(m.weight, torch.Tensor) and is_2_4(rows_view(m, m.weight.detach()))]
    if not layers:
        return {"applied": False, "note": "no 2:4 linear weights"}
    if not torch.cuda.is_available():
        return {"applied": False, "layers": len(layers), "note": NO_GPU}
    from torch.sparse import to_sparse_semi_structured

    dense_ms = sparse_ms = 0.0
    timed, skipped = 0, {}
    for name, module in layers:
        w = rows_view(module, module.weight.detach()).to("cuda", torch.float16).contiguous()
        x = torch.randn(tokens, w.shape[1], device="cuda", dtype=torch.float16)
        try:  # torch refuses shapes that are not multiples of its tile and GPUs below compute capability 8.0
            sparse_w = to_sparse_semi_structured(w)
        except (RuntimeError, ValueError) as err:
            skipped[name] = str(err).splitlines()[0][:200]
            continue
        dense_ms += _median_ms(lambda: torch.nn.functional.linear(x, w))
        sparse_ms += _median_ms(lambda: torch.nn.functional.linear(x, sparse_w))
        timed += 1
    if not timed:
        return {"applied": False, "layers": len(layers), "skipped": skipped, "note": "torch.sparse.to_sparse_semi_structured refused every layer (see skipped)"}
    return {"applied": True, "layers": timed, "skipped": skipped, "dense_ms": dense_ms, "semi_structured_ms": sparse_ms, "speedup": dense_ms / sparse_ms}
