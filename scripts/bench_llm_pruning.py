"""Issue 23's table: one-shot magnitude / Wanda / SparseGPT on the trained MiniLM tweets model, recovery steps, a decoder's perplexity.

    python scripts/bench_llm_pruning.py [--ckpt <tweets_minilm run>/checkpoints/best-epochNNN.ckpt] [--seeds 0 1 2]
        [--batches 4] [--threads 2] [--recover-steps 100] [--val-every 20] [--decoder-steps 600] [--write]

Every number comes from ``python train.py ...`` runs (subprocesses, as a user types them) and their
metrics.json / CSV logs:

1. ``strategy=oneshot_prune`` from ``--ckpt`` (a ``python train.py experiment=tweets_minilm`` checkpoint;
   without ``--ckpt`` one is trained first into the work dir) for magnitude, Wanda and SparseGPT at
   50 % unstructured and at 2:4, no retraining; Wanda and SparseGPT once per calibration seed
   (``strategy.pruning.calibration.seed``), magnitude once (it reads no calibration data). Test
   sentiment accuracy and confidence Pearson; differences to magnitude and to dense are paired by
   seed, 95 % Student-t intervals over the seeds (``scipy.stats.t``), which therefore measure the
   calibration data's spread only (one checkpoint, one test split).
2. ``strategy=prune_recover`` (shared LoRA, pruned base frozen) at 50 % per criterion (calibration
   seed 0), validated every ``--val-every`` optimizer steps: the first validation at which sentiment
   accuracy on the validation split is within 1 point of the dense model's (validated here, in this
   process, on the same split). The validation interval is the resolution of that step count.
3. ``experiment=generation_toy`` (the offline Llama-style decoder) trained for ``--decoder-steps``
   steps, then one-shot 50 % per criterion (calibration seed 0): teacher-forced perplexity of the
   held-out test split (metrics.json's per-task ``perplexity``, exp of the mean response-token
   cross-entropy), dense first.

Prints Markdown; ``--write`` replaces the ``bench_llm_pruning`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_minilm_seeds import mean_ci  # noqa: E402  (mean and 95 % Student-t half-width, scipy.stats.t)

CRITERIA = ("magnitude", "wanda", "sparsegpt")
PATTERNS = {"50 %": [], "2:4": ["strategy.pruning.criterion.n_m=[2,4]"]}
SLUGS = {"50 %": "50", "2:4": "2of4"}  # run-directory names
METRICS = {"sentiment acc": ("sentiment", "acc"), "confidence Pearson": ("confidence", "pearson")}
TOLERANCE = 0.01  # "within 1 point of dense" (accuracy is a fraction here)


def run_train(overrides: list[str], log_dir: Path, threads: int) -> dict:
    """``python train.py <overrides> paths.log_dir=<log_dir>``; its metrics.json with the run dir's CSV rows under "curve"."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"paths.log_dir={log_dir}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    found = sorted(log_dir.glob("**/metrics.json"))
    if done.returncode != 0 or not found:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(overrides)}\n{done.stderr[-3000:]}")
    metrics = json.loads(found[-1].read_text())
    rows = found[-1].parent / "csv" / "metrics.csv"
    metrics["curve"] = list(csv.DictReader(rows.open())) if rows.exists() else []
    return metrics


def value(metrics: dict, metric: str) -> float:
    """A test metric of metrics.json (``tasks``) or of its ``dense`` entry, by the table's name."""
    task, name = METRICS[metric]
    return float(metrics["tasks"][task][name])


def paired(values: list[float], reference: list[float]) -> str:
    """'+m [lo, hi]' in points: mean of values − reference (same seed) and its 95 % interval."""
    m, h = mean_ci([100 * (v - r) for v, r in zip(values, reference)])
    return f"{m:+.1f}" if h != h else f"{m:+.1f} [{m - h:+.1f}, {m + h:+.1f}]"


def oneshot_table(results: dict, dense: dict, seeds: list[int]) -> list[str]:
    """Per pattern and criterion: mean, per-seed values, paired differences to magnitude and to dense, median time."""
    lines = []
    for metric in METRICS:
        d = dense[metric]
        lines += [
            f"| pattern | criterion | {metric}, mean (dense {d:.4f}) | per seed {' / '.join(map(str, seeds))} | − magnitude, points [95 % CI] | − dense, points [95 % CI] | calibrate + prune, median |",
            "|---|---|---|---|---|---|---|",
        ]
        for pattern, by_criterion in results.items():
            magnitude = by_criterion["magnitude"][0][metric]
            for name, runs in by_criterion.items():
                vals = [r[metric] for r in runs]
                per_seed = " / ".join(f"{v:.4f}" for v in vals) if len(vals) > 1 else "(no calibration data: one run)"
                vs_mag = "—" if name == "magnitude" else paired(vals, [magnitude] * len(vals))
                seconds = statistics.median(r["seconds"] for r in runs)
                lines.append(f"| {pattern} | {name} | {statistics.fmean(vals):.4f} | {per_seed} | {vs_mag} | {paired(vals, [d] * len(vals))} | {seconds:.1f} s |")
        lines.append("")
    return lines


def val_curve(rows: list[dict], key: str = "val/sentiment/acc") -> list[tuple[int, float]]:
    """(optimizer steps done, value) of every validation row of a run's CSV log.

    Lightning logs a validation inside the epoch before it counts the step just taken (its
    ``_batches_that_stepped``), so a row logged at step s follows s + 1 optimizer steps.
    """
    return [(int(r["step"]) + 1, float(r[key])) for r in rows if r.get(key)]


def steps_to_recover(curve: list[tuple[int, float]], dense: float, tolerance: float = TOLERANCE) -> int | None:
    """The first validated step whose value is within ``tolerance`` of ``dense`` (or above it); None if none is."""
    return next((step for step, v in curve if v >= dense - tolerance), None)


def recover_table(recovered: dict, dense_val: float, args) -> list[str]:
    """Per criterion: its validation curve and the steps it took to come within 1 point of dense."""
    lines = [
        f"| criterion (50 %) | validation sentiment acc, step: value (dense {dense_val:.4f}) | LoRA steps to ≥ {dense_val - TOLERANCE:.4f} | test acc (best checkpoint) |",
        "|---|---|---|---|",
    ]
    for name, (curve, test_acc) in recovered.items():
        steps = steps_to_recover(curve, dense_val)
        reached = f"≤ {steps} (validated every {args.val_every})" if steps is not None else f"not within {args.recover_steps}"
        lines.append(f"| {name} | {', '.join(f'{s}: {v:.4f}' for s, v in curve)} | {reached} | {test_acc:.4f} |")
    return lines


def decoder_table(decoded: dict, dense: dict) -> list[str]:
    """Per criterion: each task's test perplexity at 50 % and the dense model's."""
    tasks = list(dense)
    lines = [f"| criterion (50 %) | {' | '.join(f'{t} perplexity (dense {dense[t]:.3f})' for t in tasks)} | calibrate + prune |", "|---|" + "---|" * (len(tasks) + 1)]
    for name, (ppl, seconds) in decoded.items():
        lines.append(f"| {name} | {' | '.join(f'{ppl[t]:.3f}' for t in tasks)} | {seconds:.1f} s |")
    return lines


def oneshot(ckpt: Path, criterion: str, pattern: list[str], seed: int | None, args, log_dir: Path, dense: bool) -> dict:
    """One ``strategy=oneshot_prune`` run: its metrics.json (the pruned checkpoint deleted: it is 270 MB and reproducible)."""
    overrides = ["strategy=oneshot_prune", f"strategy/pruning={criterion}", f"strategy.from_ckpt={ckpt}", *pattern, f"strategy.compare_dense={str(dense).lower()}"]
    if seed is not None:
        overrides += [f"strategy.pruning.calibration.batches={args.batches}", f"strategy.pruning.calibration.seed={seed}"]
    metrics = run_train(overrides, log_dir, args.threads)
    shutil.rmtree(Path(metrics["run_dir"]) / "checkpoints", ignore_errors=True)
    return metrics


def dense_validation(ckpt: Path) -> float:
    """The dense checkpoint's validation sentiment accuracy (the split prune_recover validates on)."""
    import lightning as L

    from peftlab.export import load_masked_model

    model, _, datamodule = load_masked_model(ckpt, False)
    L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False).validate(model, datamodule=datamodule, verbose=False)
    return float(model.trainer.callback_metrics["val/sentiment/acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a `python train.py experiment=tweets_minilm` checkpoint (default: train one first)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="calibration seeds (strategy.pruning.calibration.seed)")
    parser.add_argument("--batches", type=int, default=4, help="calibration batches of 32 rows (the recipe's default is 16)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of every run")
    parser.add_argument("--recover-steps", type=int, default=100, help="LoRA optimizer steps of each prune_recover run")
    parser.add_argument("--val-every", type=int, default=20, help="validate every n steps during recovery (the step count's resolution)")
    parser.add_argument("--decoder-steps", type=int, default=600, help="training steps of the generation_toy decoder")
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA, help="magnitude must stay: the differences are to it")
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["oneshot", "recover", "decoder"], help="parts not to run")
    parser.add_argument("--work", type=Path, default=None, help="where runs go (default: a new temp dir)")
    parser.add_argument("--write", action="store_true", help="write the bench_llm_pruning section of docs/benchmarks.md")
    args = parser.parse_args()
    if "magnitude" not in args.criteria:
        parser.error("--criteria must include magnitude (the differences are to it)")
    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_llm_pruning_"))
    load_before, t0 = os.getloadavg(), time.perf_counter()
    ckpt, trained_here = args.ckpt, args.ckpt is None
    if ckpt is None:
        print(f"no --ckpt: training one with `python train.py experiment=tweets_minilm` into {work / 'dense'}", flush=True)
        ckpt = Path(run_train(["experiment=tweets_minilm"], work / "dense", args.threads)["ckpt_path"])

    results: dict[str, dict[str, list[dict]]] = {p: {c: [] for c in args.criteria} for p in args.patterns}
    dense = None
    for pattern in [] if "oneshot" in args.skip else args.patterns:
        extra = PATTERNS[pattern]
        for criterion in args.criteria:
            for seed in [None] if criterion == "magnitude" else args.seeds:
                m = oneshot(ckpt, criterion, extra, seed, args, work / f"oneshot-{criterion}-{SLUGS[pattern]}-{seed}", dense is None)
                dense = dense or {k: value(m["dense"], k) for k in METRICS}
                row = {**{k: value(m, k) for k in METRICS}, "seconds": m["timing"]["calibrate_and_prune_s"]}
                results[pattern][criterion].append(row)
                print(f"{pattern} {criterion} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    lines = []
    if dense:
        lines += [
            f"**One-shot, no retraining**: `python train.py strategy=oneshot_prune strategy/pruning=<criterion> strategy.from_ckpt=<ckpt> "
            f"[strategy.pruning.criterion.n_m=[2,4]] strategy.pruning.calibration.batches={args.batches} strategy.pruning.calibration.seed=<seed>` "
            "(magnitude without the calibration keys). Test split; differences paired by calibration seed.",
            "",
            *oneshot_table(results, dense, args.seeds),
        ]

    if "recover" not in args.skip:
        dense_val, recovered = dense_validation(ckpt), {}
        print(f"dense validation sentiment acc {dense_val:.4f}", flush=True)
        for criterion in args.criteria:
            overrides = ["experiment=tweets_minilm", "strategy=prune_recover", f"strategy/pruning={criterion}", f"strategy.from_ckpt={ckpt}"]
            overrides += [f"+trainer.max_steps={args.recover_steps}", f"+trainer.val_check_interval={args.val_every}", "+trainer.num_sanity_val_steps=0"]
            if criterion != "magnitude":
                overrides += [f"strategy.pruning.calibration.batches={args.batches}", "strategy.pruning.calibration.seed=0"]
            m = run_train(overrides, work / f"recover-{criterion}", args.threads)
            recovered[criterion] = (val_curve(m["curve"]), value(m, "sentiment acc"))
            shutil.rmtree(Path(m["run_dir"]) / "checkpoints", ignore_errors=True)
            print(f"recover {criterion}: {recovered[criterion]}", flush=True)
        lines += [
            f"**Prune, then recover** (50 %): `python train.py experiment=tweets_minilm strategy=prune_recover strategy/pruning=<criterion> "
            f"strategy.from_ckpt=<ckpt> +trainer.max_steps={args.recover_steps} +trainer.val_check_interval={args.val_every} +trainer.num_sanity_val_steps=0` "
            f"(shared LoRA at the recipe's adapter_lr, pruned base frozen; Wanda / SparseGPT with {args.batches} calibration batches, seed 0). "
            f"Validation split (400 rows), validated every {args.val_every} optimizer steps: that is the step count's resolution. "
            "The dense accuracy is the checkpoint validated on the same split; the last column is metrics.json's test accuracy (the run's best checkpoint by val/score).",
            "",
            *recover_table(recovered, dense_val, args),
            "",
        ]

    if "decoder" not in args.skip:
        base = ["experiment=generation_toy", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1", f"+trainer.limit_train_batches={args.decoder_steps}"]
        decoder = Path(run_train(base, work / "decoder", args.threads)["ckpt_path"])
        decoded, dense_ppl = {}, None
        for criterion in args.criteria:
            m = oneshot(decoder, criterion, [], None if criterion == "magnitude" else args.seeds[0], args, work / f"decoder-{criterion}", dense_ppl is None)
            dense_ppl = dense_ppl or {t: v["perplexity"] for t, v in m["dense"]["tasks"].items()}
            decoded[criterion] = ({t: v["perplexity"] for t, v in m["tasks"].items()}, m["timing"]["calibrate_and_prune_s"])
        lines += [
            f"**Decoder** (`experiment=generation_toy`, the offline 2-layer Llama-style model, trained {args.decoder_steps} steps: "
            f"`python train.py experiment=generation_toy trainer.max_epochs=1 trainer.check_val_every_n_epoch=1 +trainer.limit_train_batches={args.decoder_steps}`), "
            f"then one-shot 50 % (calibration seed {args.seeds[0]}): teacher-forced perplexity of the held-out test prompts (500 per task; metrics.json's "
            "per-task `perplexity`, exp of the mean response-token cross-entropy).",
            "",
            *decoder_table(decoded, dense_ppl),
            "",
        ]

    minutes, load_after = (time.perf_counter() - t0) / 60, os.getloadavg()
    batches_note = "the recipe's default" if args.batches == 16 else "the recipe's default is 16"
    header = [
        f"`python scripts/bench_llm_pruning.py{'' if trained_here else ' --ckpt <ckpt>'} --seeds {' '.join(map(str, args.seeds))} --batches {args.batches} "
        f"--threads {args.threads} --recover-steps {args.recover_steps} --val-every {args.val_every} --decoder-steps {args.decoder_steps}` "
        f"({'checkpoint trained by the script' if trained_here else f'checkpoint `{ckpt.name}` of a `python train.py experiment=tweets_minilm` run'}); "
        f"{args.batches} calibration batches of 32 training rows ({batches_note}), calibration seeds "
        f"{', '.join(map(str, args.seeds))}; test split of 400 tweets; CPU, OMP_NUM_THREADS={args.threads}; {minutes:.0f} min in all; "
        f"load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end (a shared 2-core machine).",
        "",
    ]
    text = "\n".join(header + lines).rstrip()
    print(text)
    if args.write:
        from peftlab.reporting.benchmark_doc import write_benchmark_section

        write_benchmark_section("bench_llm_pruning", text, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
