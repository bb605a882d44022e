"""What a W&B run gets at the end of a job, beyond what Lightning's WandbLogger logs during it.

During training the WandbLogger already receives the resolved config (``log_hyperparams``) and
every step/epoch metric: ``train/<task>/loss``, ``alpha/<task>``, ``train/grad_norm``,
``pruning/sparsity``, ``val/…``, ``test/…``. Lightning has no hook for a run's final report, so
this adds it: the per-task test metrics as a table, the headline numbers of metrics.json in the run
summary, and the run's plots (``alpha.png``, ``sparsity_per_layer.png``, …) as images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only


def summary_values(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of ``metrics.json``, flat, as W&B summary keys."""
    values: dict[str, Any] = {"score": metrics.get("score"), "status": metrics.get("status")}
    for key in ("total", "trainable", "nonzero", "sparsity"):
        values[f"params/{key}"] = (metrics.get("params") or {}).get(key)
    for task, alpha in (metrics.get("alpha") or {}).items():
        values[f"final_alpha/{task}"] = alpha
    for task, task_metrics in (metrics.get("tasks") or {}).items():
        for name, value in task_metrics.items():
            values[f"final_test/{task}/{name}"] = value
    optimized = metrics.get("optimized_metric") or {}
    if optimized.get("name"):
        values[f"optimized/{optimized['name']}"] = optimized.get("value")
    return {k: v for k, v in values.items() if v is not None}


@rank_zero_only
def log_final_report(loggers: Iterable[Any], metrics: dict[str, Any], run_dir: str | Path) -> None:
    """Give every W&B logger the run's summary table, headline numbers and plots (rank 0 only)."""
    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers:
        return
    import wandb

    rows = [[task, name, float(value)] for task, vals in (metrics.get("tasks") or {}).items() for name, value in vals.items()]
    plots = sorted(Path(run_dir).glob("*.png"))
    for lg in wandb_loggers:
        run = lg.experiment
        payload: dict[str, Any] = {"summary/test_metrics": wandb.Table(columns=["task", "metric", "value"], data=rows)}
        payload.update({f"plots/{p.stem}": wandb.Image(str(p), caption=p.name) for p in plots})
        run.log(payload)
        run.summary.update(summary_values(metrics))
