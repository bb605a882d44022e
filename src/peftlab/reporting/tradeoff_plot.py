"""The sweep's trade-off view: score vs sparsity (one line per other setting) and score vs
parameters with the Pareto front marked.

A bar per job answers "which job won"; a sweep over pruning ratios × α asks "how much score does
each level of sparsity cost, for each α", and "which jobs are worth their parameters": no job of
the front is beaten by one that scores at least as well with no more non-zero parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peftlab.checkpoints.atomic_files import atomic_path


def pareto_front(rows: list[dict[str, Any]], cost: str = "nonzero_params") -> list[dict[str, Any]]:
    """Completed jobs no other job beats (score at least as high with ``cost`` no higher), by ``cost``."""
    done = sorted((r for r in rows if "score" in r and r.get(cost) is not None), key=lambda r: (r[cost], -r["score"]))
    front, best = [], float("-inf")
    for row in done:
        if row["score"] > best:
            front.append(row)
            best = row["score"]
    return front


def setting_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Completed jobs grouped by their swept overrides other than the sparsity ones (one line each)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "score" not in row:
            continue
        rest = [o for o in row["overrides"].split() if "sparsity" not in o.split("=", 1)[0]]
        groups.setdefault(" ".join(rest) or "all jobs", []).append(row)
    return groups


def write_tradeoff_plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Write ``path`` (PNG) when at least two jobs completed; returns whether it was written."""
    done = [r for r in rows if "score" in r]
    if len(done) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    for label, group in setting_groups(rows).items():
        group = sorted(group, key=lambda r: r["sparsity"])
        left.plot([r["sparsity"] for r in group], [r["score"] for r in group], "o-", label=label[:60])
    left.set_xlabel("sparsity (zero prunable weights)")
    left.set_ylabel("test score (mean main metric)")
    left.set_title("score vs sparsity")
    if len(setting_groups(rows)) > 1:
        left.legend(fontsize=7)
    right.scatter([r["nonzero_params"] for r in done], [r["score"] for r in done], color="0.6", label="job")
    front = pareto_front(rows)
    right.plot([r["nonzero_params"] for r in front], [r["score"] for r in front], "o-", color="tab:red", label="Pareto front")
    for row in front:
        right.annotate(f"job {row['job']}", (row["nonzero_params"], row["score"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    right.set_xlabel("non-zero parameters")
    right.set_title("score vs parameters")
    right.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return True
