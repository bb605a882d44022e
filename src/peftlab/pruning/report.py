"""Sparsity reporting: per-layer numbers, DDP mask agreement, and a bar chart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from peftlab.checkpoints.atomic_files import atomic_path


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


def write_sparsity_plot(layers: dict, path: Path, history: list | None = None, target: list | None = None) -> None:
    """Per-layer sparsity at the end (bars) and, given ``history``, sparsity over optimizer steps.

    ``history`` is ``[(step, measured sparsity), ...]`` at every mask update and ``target`` the
    schedule's ``[(step, target sparsity), ...]``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(layers)
    height = max(3.0, 0.4 * len(names) + 1.4)
    if history:
        fig, (ax, over) = plt.subplots(1, 2, figsize=(12, height), layout="constrained")
    else:
        fig, ax = plt.subplots(figsize=(7, height), layout="constrained")
    ax.barh(names, [layers[n]["sparsity"] for n in names], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("sparsity (zeros / weights)")
    ax.set_title("per-layer sparsity at the end")
    ax.invert_yaxis()
    if history:
        if target:
            over.plot([t[0] for t in target], [t[1] for t in target], color="0.6", linewidth=1.5, label="schedule target")
        over.step([h[0] for h in history], [h[1] for h in history], "o-", where="post", color="tab:red", markersize=3, label="measured (mask updates)")
        over.set_ylim(0, 1)
        over.set_xlabel("optimizer step")
        over.set_ylabel("sparsity")
        over.set_title("sparsity over training")
        over.legend(loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def schedule_report(
    prunable: list[tuple[str, torch.Tensor]],
    criterion: str,
    schedule,
    history: list,
    masks: list[torch.Tensor],
    run_dir: Path,
    unit_sparsity: float | None = None,
    write_plot: bool = True,
) -> dict:
    """A pruning run's report: per-layer sparsity, unit sparsity (structured), schedule history,
    DDP rank agreement, and ``sparsity_per_layer.png`` in ``run_dir`` (written when ``write_plot``)."""
    report = sparsity_report(prunable)
    if unit_sparsity is not None:
        report["unit_sparsity"] = unit_sparsity
    report.update(
        criterion=criterion,
        schedule=schedule.kind,
        final_sparsity_target=schedule.final_sparsity,
        history=[list(h) for h in history],
        ranks_agree=ranks_agree(masks),
    )
    plot = Path(run_dir) / "sparsity_per_layer.png"
    if write_plot:
        last = max([schedule.end_step] + [h[0] for h in history])
        target = [(t, schedule.sparsity_at(t)) for t in range(0, last + 1)] if schedule.resolved else None
        write_sparsity_plot(report["layers"], plot, history=history, target=target)
    return {"pruning": report, "sparsity_plot": str(plot)}
