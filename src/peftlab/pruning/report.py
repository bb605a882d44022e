"""Sparsity reporting: per-layer numbers, DDP mask agreement, and a bar chart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from peftlab.utils.atomic_files import atomic_path


def sparsity_report(prunable: list[tuple[str, torch.Tensor]]) -> dict:
    """``{layers: {name: {sparsity, nonzero, numel}}, global_sparsity, nonzero, prunable}``."""
    layers = {}
    for name, t in prunable:
        zeros = int((t == 0).sum())
        layers[name] = {"sparsity": zeros / t.numel(), "nonzero": t.numel() - zeros, "numel": t.numel()}
    n = sum(v["numel"] for v in layers.values())
    nz = sum(v["nonzero"] for v in layers.values())
    return {"layers": layers, "global_sparsity": (n - nz) / n if n else 0.0, "nonzero": nz, "prunable": n}


def mask_digest(masks: list[torch.Tensor]) -> str:
    """A short hash of all masks (equal digests = equal masks)."""
    h = hashlib.sha256()
    for m in masks:
        h.update(m.detach().cpu().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def ranks_agree(masks: list[torch.Tensor]) -> bool:
    """True when every DDP rank holds the same masks (always True without torch.distributed)."""
    digest = mask_digest(masks)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, digest)
    return len(set(gathered)) == 1


def write_sparsity_plot(layers: dict, path: Path) -> None:
    """A horizontal bar chart of per-layer sparsity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(layers)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2))
    ax.barh(names, [layers[n]["sparsity"] for n in names], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("sparsity (zeros / weights)")
    ax.set_title("per-layer sparsity")
    ax.invert_yaxis()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
