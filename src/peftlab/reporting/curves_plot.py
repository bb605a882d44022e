"""``curves.png``: a run's training curves over optimizer steps, drawn from its ``csv/metrics.csv``.

Three panels: the training loss of each task (and the weighted total), the validation metrics
(``val/score`` and each task's main metric as logged), and the learning rate of every
parameter group. Read from the CSV logger's file (``logger=csv``, the default, or
``logger=many``); without it there is nothing to draw and no file is written.
"""

from __future__ import annotations

from pathlib import Path

CURVES_FILE = "curves.png"


def find_metrics_csv(run_dir: str | Path) -> Path | None:
    """The CSV logger's ``metrics.csv`` of a run (``<run dir>/csv/metrics.csv``), or None."""
    path = Path(run_dir) / "csv" / "metrics.csv"
    return path if path.is_file() else None


def curve_columns(columns: list[str]) -> dict[str, list[str]]:
    """The columns of each panel: train losses, validation metrics, learning rates."""
    return {
        "train loss": [c for c in columns if c.startswith("train/") and c.endswith("loss")],
        "validation": [c for c in columns if c == "val/score" or (c.startswith("val/") and c.count("/") == 2)],
        "learning rate": [c for c in columns if c.startswith("lr-")],
    }


def plot_curves(run_dir: str | Path) -> Path | None:
    """Write ``<run dir>/curves.png`` from the run's ``csv/metrics.csv``; the file written, or None without one."""
    source = find_metrics_csv(run_dir)
    if source is None:
        return None
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(source)
    if "step" not in frame.columns or frame.empty:
        return None
    panels = {title: cols for title, cols in curve_columns(list(frame.columns)).items() if cols}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, cols) in zip(axes[0], panels.items()):
        for col in cols:
            points = frame[["step", col]].dropna()
            if points.empty:
                continue
            style = {"linewidth": 2.2, "color": "black"} if col in ("train/loss", "val/score") else {"linewidth": 1.2}
            ax.plot(points["step"], points[col], marker="o" if len(points) < 30 else None, markersize=3, label=col, **style)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        if title == "train loss" and (frame[cols].dropna(how="all") > 0).all().all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(run_dir) / CURVES_FILE
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
