"""The sweep report: one table (CSV + Markdown) and plots joining every job of a multirun.

Hydra has no such report; its sweepers only return the optimised value. This reads each job's
``metrics.json`` and ``.hydra/overrides.yaml`` so it works the same for local, DDP and SLURM
sweeps, and can be re-run by hand on a sweep directory (``scripts/sweep_report.py``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from peftlab.utils.atomic_files import atomic_path, write_text_atomic


def collect_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job: its overrides, status, score, per-task main metrics, sparsity, α and time."""
    rows = []
    for metrics_path in sorted(Path(sweep_dir).glob("*/metrics.json"), key=lambda p: _job_order(p.parent.name)):
        job_dir = metrics_path.parent
        metrics = json.loads(metrics_path.read_text())
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
        row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(overrides or []), "status": metrics.get("status")}
        if metrics.get("status") == "completed":
            row["score"] = metrics["score"]
            tasks_cfg = {t["name"]: t.get("metric", "acc") for t in metrics["config"]["data"]["tasks"]}
            for task, values in metrics["tasks"].items():
                main = tasks_cfg.get(task, next(iter(values)))
                row[f"{task}/{main}"] = values[main]
            row["sparsity"] = metrics["params"]["sparsity"]
            row["nonzero_params"] = metrics["params"]["nonzero"]
            for task, a in metrics["alpha"].items():
                row[f"alpha/{task}"] = a
            row["fit_s"] = metrics["timing"]["fit_s"]
        else:
            row["error"] = metrics.get("error", "")
        rows.append(row)
    _keep_swept_overrides(rows)
    return rows


def _keep_swept_overrides(rows: list[dict[str, Any]]) -> None:
    """Show only the overrides that differ between jobs (the swept keys)."""
    if len(rows) < 2:
        return
    parsed = [dict(o.split("=", 1) for o in row["overrides"].split() if "=" in o) for row in rows]
    keys = dict.fromkeys(k for p in parsed for k in p)
    swept = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    for row, p in zip(rows, parsed):
        row["overrides"] = " ".join(f"{k}={p[k]}" for k in swept if k in p)


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (1 << 30, name)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_sweep_report(sweep_dir: str | Path) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``sweep_dir``; return their paths."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {sweep_dir}")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    paths = {"csv": sweep_dir / "summary.csv", "md": sweep_dir / "summary.md", "png": sweep_dir / "summary.png"}
    with atomic_path(paths["csv"]) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    best = max((r for r in rows if "score" in r), key=lambda r: r["score"], default=None)
    if best:
        lines += ["", f"Best score {best['score']:.4f}: job {best['job']} ({best['overrides'] or 'defaults'})."]
    write_text_atomic(paths["md"], "\n".join(lines) + "\n")
    _plot(rows, paths["png"])
    return paths


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Score, and sparsity where it varies, of every completed job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "score" in r]
    if not done:
        return
    labels = [r["overrides"] or f"job {r['job']}" for r in done]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(done) + 2), 4))
    bars = ax.bar(range(len(done)), [r["score"] for r in done], color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(done)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("test score (mean main metric)")
    low = min(r["score"] for r in done)
    ax.set_ylim(max(0.0, low - 0.1), 1.0 if max(r["score"] for r in done) <= 1 else None)
    if len({round(r["sparsity"], 4) for r in done}) > 1:
        twin = ax.twinx()
        twin.plot(range(len(done)), [r["sparsity"] for r in done], "o--", color="tab:red")
        twin.set_ylabel("sparsity", color="tab:red")
        twin.set_ylim(0, 1)
    ax.set_title("sweep: test score per job")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


class SweepReportCallback(Callback):
    """Hydra callback: after a multirun, writes the sweep report into the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Join the jobs' metrics.json files (no-op when none was written)."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = write_sweep_report(sweep_dir)
        except FileNotFoundError:
            return
        print(f"sweep report: {paths['md']}")
        print(paths["md"].read_text())
