"""Sharing and pruning on the real example (all-MiniLM-L6-v2 + tweets), side by side in one process.

    python scripts/bench_minilm.py [--subset 2000] [--epochs 1] [--threads 2] [--write]

Trains each recipe on the same tokenised data (``experiment=tweets_minilm``, configs composed as
``train.py`` composes them, built by ``peftlab.builders``): ``full`` (strategy=share: every weight
trains), ``lora_share`` (one LoRA r=8 on query/value), ``task_lora`` (one LoRA r=8 per task, rows
routed by task), and ``prune_share`` with 30 % and 50 % of the attention heads *and* FFN units
removed (a heads callback plus an FFN-neurons callback on prune_share's cubic schedule), which
are then exported (pruning/export: LoRA merged if any, units physically removed).
For each: test metrics, trainable and non-zero parameters (of the model that is measured), and the
inference latency of one batch of 32 test tweets (median over interleaved repeats, eval mode,
``torch.inference_mode``; task_lora runs every row once per task, as at inference without a task id).
LoRA runs use lr 5e-4 (the experiment's 5e-5 is for full fine-tuning). Short budget on purpose
(a shared CPU): ``--subset`` rows of the corpus, ``--epochs`` epochs: accuracy is that of a short run.
Targets (issue 11): exported 50 % heads+FFN <= 0.6x dense latency; task_lora at least as accurate
as lora_share. Prints a Markdown table; writes the ``minilm`` section of docs/benchmarks.md only with --write.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

FFN = r"(intermediate|layer\.\d+\.output)\.dense"  # FFN producer rows and consumer columns (not attention.output)


def recipes(sparsities: list[float]) -> dict[str, tuple[list[str], float | None]]:
    """name -> (train.py overrides, heads+FFN fraction removed or None)."""
    lora_lr = "model.optimizer.lr=5e-4"
    out = {"full": (["strategy=share"], None), "lora_share": (["strategy=lora_share", lora_lr], None), "task_lora": (["strategy=task_lora", lora_lr], None)}
    for s in sparsities:
        out[f"prune_share {round(s * 100)} % heads+FFN"] = (["strategy=prune_share", "strategy/pruning=heads", f"strategy.pruning.final_sparsity={s}"], s)
    return out


def train_one(overrides: list[str], sparsity: float | None, datamodule, epochs: int, out_dir: Path):
    """Fit and test one recipe; returns (model, test metrics)."""
    import lightning as L

    from peftlab.builders import build_model, build_strategy_callbacks
    from peftlab.callbacks.pruning import PruningCallback
    from peftlab.config.compose import compose_train_config
    from peftlab.pruning.criteria import Neurons

    cfg = compose_train_config(["experiment=tweets_minilm", *overrides], out_dir)
    L.seed_everything(int(cfg.seed), workers=True)
    model = build_model(cfg)
    callbacks = build_strategy_callbacks(cfg)
    if sparsity is not None:  # FFN units on the same schedule as the heads
        heads = callbacks[0]
        s = heads.schedule
        callbacks.append(PruningCallback(criterion=Neurons(), schedule=s.kind, start_step=s.start_step, end_step=s.end_step, every_n_steps=s.every_n_steps, final_sparsity=sparsity, include=FFN))
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, gradient_clip_val=None
    )
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return model, metrics, cfg


def count(model) -> tuple[int, int, int]:
    """(total, trainable by the policy + heads, non-zero) parameters; masks applied."""
    from peftlab.pruning.masks import get_mask

    total = nonzero = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            mask = get_mask(module, name)
            w = p.detach() * mask if mask is not None else p.detach()
            total += p.numel()
            nonzero += int((w != 0).sum())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable, nonzero


def export_in_place(model) -> dict[str, int]:
    """What scripts/export.py does to the weights: merge LoRA (if any) into the masked base, remove pruned units."""
    from peftlab.export import merge_adapters
    from peftlab.pruning.compaction import compact

    merge_adapters(model)
    return compact(model)


def latencies(models: dict, inputs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of one forward per model, repeats interleaved so load changes hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(inputs)  # warm-up
        for _ in range(repeats):
            for k, m in models.items():
                t0 = time.perf_counter()
                m(inputs)
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=2000, help="rows of the tweets corpus (80 %% train)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--repeats", type=int, default=15, help="latency repeats per model")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--write", action="store_true", help="write the minilm section of docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile

    import peftlab.cli  # noqa: F401  (config resolvers)
    from peftlab.batch import slice_inputs
    from peftlab.builders import build_datamodule
    from peftlab.config.compose import compose_train_config

    work = Path(tempfile.mkdtemp(prefix="bench_minilm_"))
    base = [f"data.source.subset={args.subset}"]
    datamodule = build_datamodule(compose_train_config(["experiment=tweets_minilm", *base], work / "data"))
    batch = next(iter(datamodule.test_dataloader()))
    inputs = slice_inputs(batch["inputs"], slice(0, 32))
    rows, models = {}, {}
    for i, (name, (overrides, sparsity)) in enumerate(recipes(args.sparsities).items()):
        t0 = time.perf_counter()
        model, metrics, _ = train_one([*base, *overrides], sparsity, datamodule, args.epochs, work / f"run{i}")
        model.eval()
        total, trainable, nonzero = count(model)
        removed = export_in_place(model) if sparsity is not None else {}
        rows[name] = dict(metrics=metrics, total=total, trainable=trainable, nonzero=nonzero, removed=removed, exported=sum(p.numel() for p in model.parameters()), fit_s=time.perf_counter() - t0)
        models[name] = model
        r = rows[name]
        print(
            f"{name}: done in {r['fit_s']:.0f} s; test { ({k: round(v, 4) for k, v in metrics.items()}) }; trainable {r['trainable']:,}, non-zero {r['nonzero']:,}, exported {r['exported']:,}",
            flush=True,
        )
    lat = latencies(models, inputs, args.repeats)
    text = report(rows, lat, args)
    print(text)
    if args.write:
        from peftlab.reporting.benchmark_doc import write_benchmark_section

        write_benchmark_section("minilm", text, ROOT / "docs" / "benchmarks.md")


def report(rows: dict, lat: dict, args) -> str:
    """The Markdown table (and how it was measured)."""
    dense = lat["full"]
    lines = [
        f"all-MiniLM-L6-v2 on tweets (`experiment=tweets_minilm`), {args.subset} rows (80 % train), {args.epochs} epoch(s), "
        f"CPU, {args.threads} threads, one process (`python scripts/bench_minilm.py --subset {args.subset} --epochs {args.epochs}`). "
        "Short runs on a shared CPU: compare rows, not absolute accuracy. Latency: one batch of 32 test tweets, median of "
        f"{args.repeats} interleaved repeats; pruned rows are the exported model (units removed); task_lora runs each row once per task.",
        "",
        "| recipe | sentiment acc | confidence pearson | trainable | non-zero | params (exported) | latency b32 (ms) | vs full |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        m = r["metrics"]
        lines.append(
            f"| {name} | {m.get('test/sentiment/acc', float('nan')):.3f} | {m.get('test/confidence/pearson', float('nan')):.3f} | "
            f"{r['trainable']:,} | {r['nonzero']:,} | {r['exported']:,} | {lat[name] * 1e3:.1f} | {lat[name] / dense:.2f}x |"
        )
    lines += ["", "Targets (issue 11): exported 50 % heads+FFN <= 0.6x full latency; task_lora accuracy >= lora_share."]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
