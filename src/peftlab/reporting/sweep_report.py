"""The sweep report: one table (CSV + Markdown) and plots joining every job of a multirun.

Hydra has no such report; its sweepers only return the optimised value. This reads each job's
``metrics.json`` and ``.hydra/overrides.yaml`` so it works the same for local, DDP and SLURM
sweeps, and can be re-run by hand on a sweep directory (``scripts/sweep_report.py``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from peftlab.checkpoints.atomic_files import atomic_path, write_text_atomic
from peftlab.reporting.tradeoff_plot import pareto_front, write_tradeoff_plot

NO_METRICS = "no metrics.json: the job did not finish"
NOT_STARTED = "no job directory: the job never started"


def planned_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep launched, from its ``multirun.yaml`` (None when that cannot be told).

    Optuna: ``hydra.sweeper.n_trials``. Hydra's basic sweeper: the product of the value counts of
    its sweep overrides (``a=1,2``, ``range(...)``, ``choice(...)``) and ``hydra.sweeper.params``,
    counted with Hydra's own override parser. A job that never started (a SLURM job cancelled
    before it ran, a sweep stopped midway) has no directory, so only this count reveals it.
    """
    path = Path(sweep_dir) / "multirun.yaml"
    try:
        hydra_cfg = (yaml.safe_load(path.read_text()) or {}).get("hydra", {}) if path.is_file() else {}
        sweeper = hydra_cfg.get("sweeper") or {}
        target = str(sweeper.get("_target_", ""))
        if "optuna" in target.lower():
            return int(sweeper["n_trials"])
        if not target.endswith("BasicSweeper"):
            return None
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = list((hydra_cfg.get("overrides") or {}).get("task") or []) + [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        count = 1
        for override in OverridesParser.create().parse_overrides(args):
            if override.is_sweep_override():
                count *= len(list(override.sweep_string_iterator()))
        return count
    except Exception:  # a glob sweep, an unknown sweeper, an unreadable file: count only what is on disk
        return None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job directories (each has ``.hydra/`` or ``metrics.json``), in job order."""
    sweep_dir = Path(sweep_dir)
    dirs = {p.parent for pattern in ("*/.hydra", "*/metrics.json") for p in sweep_dir.glob(pattern)}
    return sorted(dirs, key=lambda d: _job_order(d.name))


def collect_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job: its overrides, status, score, per-task main metrics, sparsity, α and time.

    A failed job keeps its one-line ``error``; a job that left no ``metrics.json`` (killed, or
    still running) is listed with status ``missing``; a job of the sweep's plan
    (:func:`planned_jobs`) without a directory, with status ``not started``.
    """
    rows, errors = [], []
    for job_dir in job_dirs(sweep_dir):
        path = job_dir / "metrics.json"
        metrics = json.loads(path.read_text()) if path.exists() else {"status": "missing", "error": NO_METRICS}
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
            row["trainable_params"] = metrics["params"].get("trainable")
            for task, a in metrics["alpha"].items():
                row[f"alpha/{task}"] = a
            row["fit_s"] = metrics.get("timing", {}).get("fit_s")
        rows.append(row)
        errors.append(None if metrics.get("status") == "completed" else metrics.get("error") or _stopped(metrics))
    seen = {row["job"] for row in rows}
    for num in range(planned_jobs(sweep_dir) or 0):
        if str(num) not in seen:
            rows.append({"job": str(num), "overrides": "", "status": "not started"})
            errors.append(NOT_STARTED)
    order = sorted(range(len(rows)), key=lambda i: _job_order(rows[i]["job"]))
    rows, errors = [rows[i] for i in order], [errors[i] for i in order]
    _keep_swept_overrides(rows)
    for row, error in zip(rows, errors):
        if error is not None:
            row["error"] = error  # added last so it becomes the last (longest) column
    return rows


def _stopped(metrics: dict[str, Any]) -> str:
    """The one-line error of an interrupted job: the signal and where it stopped."""
    stopped = metrics.get("stopped") or {}
    return f"interrupted by {stopped.get('signal')} at global step {stopped.get('global_step')}" if stopped else ""


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
    return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def write_sweep_report(sweep_dir: str | Path) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md``, ``summary.png`` and (two or more completed jobs) ``tradeoff.png``
    into ``sweep_dir``; return their paths."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a directory")
    rows = collect_rows(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"no job directories (*/.hydra or */metrics.json) under {sweep_dir}")
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
    front = pareto_front(rows)
    if len(front) > 1 or (front and len([r for r in rows if "score" in r]) > 1):
        lines += [
            "",
            "Pareto front (no job scores at least as well with fewer non-zero parameters): " + ", ".join(f"job {r['job']} ({r['score']:.4f}, {r['nonzero_params']:,} non-zero)" for r in front) + ".",
        ]
    failed = [r for r in failed_jobs(rows) if r["status"] != "not started"]
    if failed:
        lines += ["", f"{len(failed)} of {len(rows)} jobs failed: {', '.join(r['job'] for r in failed)}.", ""]
        lines += [f"- job {r['job']} ({r['overrides'] or 'defaults'}): {r.get('error', '')}" for r in failed]
    never = [r for r in rows if r["status"] == "not started"]
    if never:
        lines += ["", f"{len(never)} of {len(rows)} jobs never started (no job directory): {', '.join(r['job'] for r in never)}."]
    write_text_atomic(paths["md"], "\n".join(lines) + "\n")
    _plot(rows, paths["png"])
    if write_tradeoff_plot(rows, sweep_dir / "tradeoff.png"):
        paths["tradeoff"] = sweep_dir / "tradeoff.png"
    return paths


def failed_jobs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of jobs that did not complete."""
    return [r for r in rows if r["status"] != "completed"]


def short_label(overrides: str) -> str:
    """One line per swept override, each key shortened to its last part when that stays unique."""
    pairs = [o.split("=", 1) for o in overrides.split() if "=" in o]
    leaves = [k.rsplit(".", 1)[-1].rsplit("/", 1)[-1] for k, _ in pairs]
    unique = len(set(leaves)) == len(leaves)
    return "\n".join(f"{leaf if unique else k}={v}" for (k, v), leaf in zip(pairs, leaves))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Score of every completed job (bars), and its sparsity in a panel below where it varies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "score" in r]
    if not done:
        return
    labels = [short_label(r["overrides"]) or f"job {r['job']}" for r in done]
    with_sparsity = len({round(r["sparsity"], 4) for r in done}) > 1
    width = max(6.0, 1.2 * len(done) + 2)
    if with_sparsity:
        fig, (ax, low_ax) = plt.subplots(2, 1, figsize=(width, 6), sharex=True, height_ratios=[3, 1.3], layout="constrained")
    else:
        fig, ax = plt.subplots(figsize=(width, 4.5), layout="constrained")
    x = list(range(len(done)))
    scores = [r["score"] for r in done]
    bars = ax.bar(x, scores, color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_ylabel("test score (mean main metric)")
    top = 1.0 if max(scores) <= 1 else max(scores) * 1.05
    ax.set_ylim(max(0.0, min(scores) - 0.1), top + 0.04 * top)
    failed = failed_jobs(rows)
    ax.set_title("sweep: test score per job" + (f" ({len(failed)} of {len(rows)} jobs failed, not shown)" if failed else ""))
    bottom = ax
    if with_sparsity:
        sp = low_ax.bar(x, [r["sparsity"] for r in done], color="tab:red")
        low_ax.bar_label(sp, fmt="%.2f", fontsize=8, padding=2)
        low_ax.set_ylim(0, 1.2)
        low_ax.set_ylabel("sparsity")
        bottom = low_ax
    long_labels = max(len(line) for label in labels for line in label.splitlines()) * len(done) > 110
    bottom.set_xticks(x, labels, fontsize=8, rotation=30 if long_labels else 0, ha="right" if long_labels else "center")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


class SweepReportCallback(Callback):
    """Hydra callback: after a multirun, writes the sweep report into the sweep directory.

    When any job failed, the multirun then exits with status 1 and ``error: N of M jobs failed``
    (each job already printed its own error line; the report lists them).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Join the jobs' metrics.json files (no-op when no job directory exists)."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = write_sweep_report(sweep_dir)
        except FileNotFoundError:
            return
        print(f"sweep report: {paths['md']}")
        print(paths["md"].read_text())
        rows = collect_rows(sweep_dir)
        failed = failed_jobs(rows)
        if failed:
            sys.exit(f"error: {len(failed)} of {len(rows)} jobs failed (jobs {', '.join(r['job'] for r in failed)}); see {paths['md']}")
