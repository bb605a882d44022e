"""The rich table printed at the end of a run."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table

from peftlab.reporting.curves_plot import plot_curves
from peftlab.reporting.metrics_file import write_metrics

#: Widest layer name in the table: at 80 columns the value column still fits beside it.
LAYER_NAME_WIDTH = 34


def short_layer_names(names: list[str], width: int = LAYER_NAME_WIDTH) -> dict[str, str]:
    """Distinguishable short names: the dotted prefix every name shares is dropped (two parts are
    always kept), and a name still
    wider than ``width`` keeps its end, where layer names differ ("…" + its last dotted parts that
    fit, or its last characters)."""
    parts = [n.split(".") for n in names]
    common = 0
    while len(names) > 1 and all(len(p) > common + 2 and p[common] == parts[0][common] for p in parts):
        common += 1
    short = {}
    for name, p in zip(names, parts):
        rest = p[common:]
        while len(rest) > 1 and len(".".join(rest)) > width - 1:
            rest = rest[1:]
        text = ".".join(rest)
        short[name] = text if rest == p[common:] else "…" + text[-(width - 1) :]
    return short


def summary_table(metrics: dict[str, Any], sharing: dict[str, int] | None = None) -> Table:
    """Per-task test metrics, parameter counts, α and wall time in one table."""
    table = Table(title=f"peftlab run — score {metrics.get('score', float('nan')):.4f}", show_lines=False)
    table.add_column("what", no_wrap=True)  # row names are cut by short_layer_names, never by rich
    table.add_column("value", justify="right")
    for task, values in metrics.get("tasks", {}).items():
        table.add_row(f"test/{task}", "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    p = metrics.get("params", {})
    if p:
        pct = f" ({p['trainable_pct']:.2f} %)" if "trainable_pct" in p else ""
        table.add_row("params total / trainable", f"{p['total']:,} / {p['trainable']:,}{pct}")
        table.add_row("params non-zero", f"{p['nonzero']:,}")
        table.add_row("prunable / sparsity", f"{p['prunable']:,} / {p['sparsity']:.1%}")
    pruning = metrics.get("pruning")
    if pruning:
        layers = pruning.get("layers", {})
        names = short_layer_names(list(layers))
        for layer, info in layers.items():
            table.add_row(f"  sparsity {names[layer]}", f"{info['sparsity']:.1%} ({info['nonzero']:,} of {info['numel']:,} non-zero)")
        if "unit_sparsity" in pruning:
            table.add_row("  unit sparsity", f"{pruning['unit_sparsity']:.1%} of neurons/heads removed")
    if sharing:
        saved = sharing["separate"] - sharing["shared"]
        table.add_row(
            "sharing",
            f"shared {sharing['shared']:,} vs separate {sharing['separate']:,} (sharing saves {saved:,}, {sharing['separate'] / sharing['shared']:.2f}x)",
        )
    alpha = metrics.get("alpha", {})
    if alpha:
        table.add_row("alpha", "  ".join(f"{k} {v:.3g}" for k, v in alpha.items()))
    t = metrics.get("timing", {})
    if "fit_s" in t:
        table.add_row("fit wall time", f"{t['fit_s']:.1f} s")
        table.add_row("train step (median)", f"{t['train_step_ms_median']:.2f} ms, {t['samples_per_s']:,.0f} samples/s")
    if "calibrate_and_prune_s" in t:  # strategy=oneshot_prune: no training
        table.add_row("calibrate + prune", f"{t['calibrate_and_prune_s']:.3f} s")
    if metrics.get("dense"):
        table.add_row("dense score (before pruning)", f"{metrics['dense']['score']:.4f}")
    return table


def summary_paths(metrics: dict[str, Any]) -> list[str]:
    """``checkpoint: <path>`` and ``run dir: <path>`` lines, whole: the next commands need them."""
    return [f"checkpoint: {metrics.get('ckpt_path')}", f"run dir:    {metrics.get('run_dir')}"]


def print_summary(metrics: dict[str, Any], sharing: dict[str, int] | None = None) -> None:
    """Print :func:`summary_table`, then the checkpoint and run-dir paths unabridged (plain lines,
    never cut or wrapped to the terminal width, so they can be copied)."""
    Console().print(summary_table(metrics, sharing))
    print("\n".join(summary_paths(metrics)), flush=True)


@rank_zero_only
def report_run(run_dir, metrics: dict[str, Any], sharing: dict[str, int] | None = None) -> None:
    """On rank zero: write ``<run_dir>/metrics.json`` and ``curves.png`` (from the CSV logger's
    file, when there is one), and print the summary table."""
    write_metrics(run_dir, metrics)
    plot_curves(run_dir)
    print_summary(metrics, sharing)
