"""Test accuracy of every weighting method on the digits example over seeds (issue 24's table).

Each (method, seed) is one ``python train.py strategy/weighting=<method> seed=<seed>`` (digits, the
default settings: 30 epochs, AdamW, every method's own defaults), run one after the other with
``OMP_NUM_THREADS=1``; ``seed`` drives the split, the initialisation and the shuffles, so the
seeds are paired across methods. Seeds are the outer loop, so a machine-load change hits every
method alike. Each finished run's figures are kept in ``--out``/results.json: a rerun skips them
(``--methods`` adds methods to an earlier table).

The table: mean ± sample std over seeds of the test score (mean of the three tasks' accuracy,
``metrics.json``'s ``score``) and of the digit accuracy, and the paired difference of the score
to equal weighting (mean over seeds, in points).

    OMP_NUM_THREADS=1 python scripts/bench_weighting_accuracy.py [--seeds 0 1 2] [--methods pcgrad mgda] [--out DIR] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted(p.stem for p in (ROOT / "configs" / "strategy" / "weighting").glob("*.yaml"))
#: Why a method ends more than 1 point below equal weighting (written after reading its runs; printed under the table).
REASONS = {
    "krum": "Krum (n_selected 1) steps along the one task gradient closest to the others and drops the rest, so two of the three tasks train only on the steps where theirs is picked.",
    "excess_mtl": "With the official defaults (n_warmup_steps 0, η 1) the first step's excess risk enters unscaled (Σ_j g_j²/|g_j| = ‖g‖₁ over every shared parameter), which saturates the softmax: α is (3, 0, 0) from step 1 and later the whole weight jumps from task to task, so each step trains about one task.",
    "pcd": "PCD follows the primary task (digit) and guarantees the other two only τ = 2 % of their own progress, so parity and high train far less; its digit accuracy is on par.",
}
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=csv"]


def run_one(method: str, seed: int, out: Path) -> dict:
    """Train one method with one seed through train.py; its score, digit accuracy and wall time."""
    log_dir = out / f"{method}_s{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "WANDB_SILENT": "true"}
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "train.py"), f"strategy/weighting={method}", f"seed={seed}", f"paths.log_dir={log_dir}", *QUIET]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    files = sorted(log_dir.rglob("metrics.json"))
    if proc.returncode != 0 or not files:
        return {"status": "failed", "error": (proc.stderr.strip().splitlines() or ["no output"])[-1], "seconds": seconds}
    metrics = json.loads(files[-1].read_text())
    return {"status": metrics["status"], "score": metrics.get("score"), "digit": metrics.get("tasks", {}).get("digit", {}).get("acc"), "seconds": seconds}


def mean_std(values: list[float]) -> str:
    """'mean ± std' in percent (std over seeds; 0 for one seed)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f}"


def table(results: dict, methods: list[str], seeds: list[int]) -> str:
    """The Markdown table of the finished (method, seed) runs."""
    key = lambda m, s: f"{m}/{s}"  # noqa: E731
    done = lambda m: [s for s in seeds if results.get(key(m, s), {}).get("status") == "completed"]  # noqa: E731
    lines = [
        "## Weighting methods: test accuracy on the digits example over seeds (`scripts/bench_weighting_accuracy.py`)",
        "",
        f"Digits example, default settings (30 epochs, AdamW), seeds {', '.join(map(str, seeds))}, one `python train.py strategy/weighting=<method> seed=<s>` each, "
        "CPU with `OMP_NUM_THREADS=1` (`OMP_NUM_THREADS=1 python scripts/bench_weighting_accuracy.py --write`). Score: mean of the three tasks' test accuracy; "
        "Δ: the score minus equal weighting's on the same seed, mean over seeds, in points.",
        "",
        "| method | score (%) | digit acc (%) | Δ score vs equal (points) | seeds | run s (mean) |",
        "|---|---|---|---|---|---|",
    ]
    deltas: dict[str, float] = {}
    for m in methods:
        ok = done(m)
        failed = [s for s in seeds if results.get(key(m, s), {}).get("status") == "failed"]
        if not ok:
            note = f"failed: {results[key(m, failed[0])]['error']}" if failed else "not run"
            lines.append(f"| `{m}` | {note} | | | 0 | |")
            continue
        rows = [results[key(m, s)] for s in ok]
        paired = [results[key(m, s)]["score"] - results[key("equal", s)]["score"] for s in ok if results.get(key("equal", s), {}).get("status") == "completed"]
        delta = f"{round(100 * statistics.fmean(paired), 2) + 0.0:+.2f}" if paired else "n/a"  # + 0.0: no "-0.00"
        if paired:
            deltas[m] = 100 * statistics.fmean(paired)
        secs = statistics.fmean(r["seconds"] for r in rows)
        lines.append(f"| `{m}` | {mean_std([r['score'] for r in rows])} | {mean_std([r['digit'] for r in rows])} | {delta} | {len(ok)} | {secs:.0f} |")
    below = [(m, d) for m, d in deltas.items() if d < -1.0]
    if below:
        lines += ["", "More than 1 point below equal weighting:"]
        lines += [f"- `{m}` ({d:+.2f}): {REASONS.get(m, 'no reason recorded yet.')}" for m, d in below]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench_weighting_accuracy", help="run dirs and results.json (reused: finished runs are skipped)")
    parser.add_argument("--write", action="store_true", help="write the weighting_accuracy section of docs/benchmarks.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    methods = ["equal", *[m for m in args.methods if m != "equal"]]
    for seed in args.seeds:
        for method in methods:
            if results.get(f"{method}/{seed}", {}).get("status") == "completed":
                continue
            results[f"{method}/{seed}"] = run_one(method, seed, args.out)
            store.write_text(json.dumps(results, indent=1))
            print(f"{method} seed {seed}: {results[f'{method}/{seed}']}", flush=True)
    shown = [m for m in METHODS if any(f"{m}/{s}" in results for s in args.seeds)]
    text = table(results, shown, args.seeds)
    print(text)
    if args.write:
        from peftlab.reporting.benchmark_doc import write_benchmark_section

        write_benchmark_section("weighting_accuracy", text, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
