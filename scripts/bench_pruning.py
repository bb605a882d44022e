"""Pruning benchmark: what pruning buys at inference, and what it costs during training.

    python scripts/bench_pruning.py [--quick] [--accuracy] [--write]

Side by side in one run (medians of interleaved repeats, one intra-op thread):
1. inference latency of the exported (physically smaller) model vs dense at 25/50/75 %
   structured sparsity, on the digits MLP and on BERT-base-shaped encoder layers
   (random init from a BertConfig; FFN units and attention heads removed);
2. CSR ``torch.sparse.mm`` vs dense matmul at 50-95 % unstructured sparsity (FFN weight 3072x768);
3. per-step training overhead of peftlab's PruningCallback and of Lightning's ModelPruning
   (global L1, amount 0.5) vs no pruning, on the digits MLP;
4. with --accuracy: mean test accuracy over 3 seeds, dense vs 95 % unstructured vs 75 %
   structured (full default runs of strategy=prune_share).
Prints its tables; with --write it also rewrites the `pruning` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from peftlab.callbacks.pruning import PruningCallback  # noqa: E402
from peftlab.config.compose import compose_train_config  # noqa: E402
from peftlab.pruning.compaction import compact  # noqa: E402
from peftlab.pruning.criteria import Heads, Magnitude, Neurons  # noqa: E402
from peftlab.reporting.benchmark_doc import write_benchmark_section  # noqa: E402


def interleaved(fns: dict, repeats: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin so load drifts hit all alike."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------- 1. structured
def digits_model(seed: int = 0):
    from peftlab.builders import build_datamodule, build_model

    cfg = compose_train_config(["trainer.max_epochs=1", f"seed={seed}"])
    dm = build_datamodule(cfg)
    return build_model(cfg).eval(), dm


def shrunk(model, holder, sparsity, criteria):
    m = copy.deepcopy(model)
    h = m if holder is None else holder(m)
    for crit, kwargs in criteria:
        cb = PruningCallback(criterion=crit, **kwargs)
        cb.attach(h)
        cb.update_masks(sparsity)
    compact(h)
    return m


def bench_structured(quick: bool) -> list[dict]:
    rows = []
    levels = (0.25, 0.5, 0.75)
    model, dm = digits_model()
    x = next(iter(dm.test_dataloader()))["inputs"][:256]
    models = {0.0: model} | {s: shrunk(model, None, s, [(Neurons(), {})]) for s in levels}
    with torch.no_grad():
        t = interleaved({s: (lambda m=m: m(x)) for s, m in models.items()}, repeats=30 if quick else 200, inner=5)
    for s in levels:
        rows.append({"model": "digits MLP 64-256-256 + 3 heads, batch 256", "sparsity": s, "params": _ratio(models[s], model), "latency": t[s] / t[0.0]})

    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    layers = 2 if quick else 4
    cfg = BertConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=layers, attn_implementation="eager")
    bert = BertModel(cfg).eval()
    enc = bert.encoder

    def holder(encoder):
        h = nn.Module()
        h.body = encoder
        return h

    crit = [
        (Heads(), {"include": r"attention\.(self\.(query|key|value)|output\.dense)"}),
        (Neurons(), {"include": r"(intermediate|output)\.dense\.weight$", "exclude": "attention"}),
    ]
    encs = {0.0: enc} | {s: shrunk(enc, holder, s, crit) for s in levels}
    h = torch.randn(8, 128, 768)
    with torch.no_grad():
        t = interleaved({s: (lambda e=e: e(h)) for s, e in encs.items()}, repeats=3 if quick else 7)
    for s in levels:
        rows.append(
            {
                "model": f"BERT-base-shaped encoder layers ({layers}), batch 8, seq 128",
                "sparsity": s,
                "params": _ratio(encs[s], enc),
                "latency": t[s] / t[0.0],
                "shape": f"FFN {encs[s].layer[0].intermediate.dense.out_features}, heads {encs[s].layer[0].attention.self.num_attention_heads}",
            }
        )
    return rows


def _ratio(a: nn.Module, b: nn.Module) -> float:
    return sum(p.numel() for p in a.parameters()) / sum(p.numel() for p in b.parameters())


# ---------------------------------------------------------------- 2. CSR
def bench_csr(quick: bool) -> list[dict]:
    torch.manual_seed(0)
    w, x = torch.randn(3072, 768), torch.randn(768, 128)  # 128 tokens
    rows = []
    for s in (0.5, 0.7, 0.9, 0.95):
        cb = PruningCallback(criterion=Magnitude(), scope="body")
        holder = nn.Module()
        holder.body = nn.Linear(768, 3072, bias=False)
        with torch.no_grad():
            holder.body.weight.copy_(w)
        cb.attach(holder)
        cb.update_masks(s)
        dense = holder.body.weight.detach().clone()
        csr = dense.to_sparse_csr()
        t = interleaved({"dense": lambda: dense @ x, "csr": lambda: torch.sparse.mm(csr, x)}, repeats=20 if quick else 100, inner=3)
        rows.append({"sparsity": s, "dense_ms": t["dense"] * 1e3, "csr_ms": t["csr"] * 1e3, "speedup": t["dense"] / t["csr"]})
    return rows


# ---------------------------------------------------------------- 3. overhead
def bench_overhead(quick: bool) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import ModelPruning

    class LoopTimer(L.Callback):
        """Time between consecutive batch starts: the whole loop iteration, every callback's hooks included."""

        def __init__(self):
            self.step_ms, self._last = [], None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            now = time.perf_counter()
            if self._last is not None and batch_idx > 0:
                self.step_ms.append((now - self._last) * 1e3)
            self._last = now

    def fit(kind: str) -> tuple[float, float]:
        L.seed_everything(0, workers=True)
        model, dm = digits_model()
        model.train()
        timer = LoopTimer()
        cbs = [timer]
        if kind == "peftlab":
            cbs.append(PruningCallback(criterion=Magnitude(), schedule="cubic", start_step=0, end_step=50, every_n_steps=10, final_sparsity=0.5))
        elif kind == "lightning":
            cbs.append(ModelPruning("l1_unstructured", amount=0.5, use_global_unstructured=True, verbose=0))
        trainer = L.Trainer(
            max_epochs=5,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            callbacks=cbs,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        import logging

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        t = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        return statistics.median(timer.step_ms), sum(timer.step_ms) / len(timer.step_ms), time.perf_counter() - t

    kinds = ("none", "peftlab", "lightning")
    med = {k: [] for k in kinds}
    mean = {k: [] for k in kinds}
    for _ in range(4 if quick else 12):
        for k in kinds:
            m, a, _ = fit(k)
            med[k].append(m)
            mean[k].append(a)
    out = {k: {"median_ms": statistics.median(med[k]), "mean_ms": statistics.median(mean[k])} for k in kinds}
    out["hook_us"] = hook_cost_us()
    for k in ("peftlab", "lightning"):
        out[k]["median_ratio"] = statistics.median([a / b for a, b in zip(med[k], med["none"])])
        out[k]["mean_ratio"] = statistics.median([a / b for a, b in zip(mean[k], mean["none"])])
    return out


def hook_cost_us(calls: int = 5000) -> float:
    """The callback's own per-step work (re-zeroing masks + schedule check) on the digits MLP, in µs."""
    from types import SimpleNamespace

    model, _ = digits_model()
    cb = PruningCallback(criterion=Magnitude(), start_step=10**6, end_step=10**6 + 10)
    cb.attach(model)
    trainer = SimpleNamespace(global_step=5, loggers=[])
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            cb.on_before_optimizer_step(trainer, model, None)
            cb.on_train_batch_end(trainer, model, None, None, 0)
        runs.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(runs)


# ---------------------------------------------------------------- 4. accuracy
def bench_accuracy() -> list[dict]:
    from omegaconf import open_dict

    from peftlab.train import train

    tuned = ["strategy/pruning=global_magnitude", "strategy.pruning.start_step=20", "strategy.pruning.end_step=300", "strategy.pruning.every_n_steps=10"]
    settings = {
        "dense (strategy=share)": ["strategy=share"],
        "95 % unstructured, prune_share as shipped (magnitude, steps 100-400)": ["strategy=prune_share", "strategy.pruning.final_sparsity=0.95"],
        "75 % structured, prune_share + strategy/pruning=neurons": ["strategy=prune_share", "strategy/pruning=neurons", "strategy.pruning.final_sparsity=0.75"],
        "dense, lr 0.004": ["strategy=share", "model.optimizer.lr=0.004"],
        "95 % unstructured, global_magnitude, steps 20-300, lr 0.004": ["strategy=prune_share", *tuned, "strategy.pruning.final_sparsity=0.95", "model.optimizer.lr=0.004"],
    }
    rows = []
    for name, ov in settings.items():
        accs, sparsities = [], []
        for seed in (1, 2, 3):
            with tempfile.TemporaryDirectory() as d:
                cfg = compose_train_config([*ov, f"seed={seed}", "callbacks=model_checkpoint", "logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])
                with open_dict(cfg):
                    cfg.paths.output_dir = d
                    cfg.paths.log_dir = d
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()):
                    m = train(cfg)
            accs.append(statistics.mean(v["acc"] for v in m["tasks"].values()))
            sparsities.append(m.get("pruning", {}).get("unit_sparsity", m["params"]["sparsity"]))
        rows.append({"setting": name, "acc": [round(a * 100, 2) for a in accs], "mean": statistics.mean(accs) * 100, "sparsity": statistics.mean(sparsities)})
    return rows


# ---------------------------------------------------------------- report
def markdown(structured, csr, overhead, accuracy, quick: bool, seconds: float) -> str:
    lines = [
        f"Command: `python scripts/bench_pruning.py{' --quick' if quick else ''}{' --accuracy' if accuracy else ''}` "
        f"({seconds:.0f} s; torch {torch.__version__}, 1 intra-op thread, {'quick: fewer repeats' if quick else 'full repeats'}). "
        "Ratios are medians of interleaved runs in one process; < 1 is faster.",
        "",
        "**Exported structured model vs dense (inference)**",
        "",
        "| model | structured sparsity | shape after export | params vs dense | latency vs dense |",
        "|---|---|---|---|---|",
    ]
    for r in structured:
        lines.append(f"| {r['model']} | {r['sparsity']:.0%} | {r.get('shape', 'hidden ' + str(int(256 * (1 - r['sparsity']))))} | {r['params']:.2f}× | {r['latency']:.2f}× |")
    lines += ["", "**Unstructured: CSR `torch.sparse.mm` vs dense matmul (weight 3072×768, 128 tokens, 1 thread)**", "", "| sparsity | dense ms | CSR ms | CSR speed vs dense |", "|---|---|---|---|"]
    for r in csr:
        verdict = "faster" if r["speedup"] > 1.05 else ("slower" if r["speedup"] < 0.95 else "break-even")
        lines.append(f"| {r['sparsity']:.0%} | {r['dense_ms']:.3f} | {r['csr_ms']:.3f} | {r['speedup']:.2f}× ({verdict}) |")
    lines += [
        "",
        "Zeros inside a dense weight give no speed-up at all; CSR only pays off at high sparsity, so export stores CSR for file size, and serving speed comes from structured removal.",
        "",
        "**Training-step overhead on the digits MLP (5 epochs × 20 steps, masks updated every 10 steps until step 50; time between batch starts, all hooks included)**",
        "",
        "| callback | median step ms | step time vs no pruning (median) | (mean, incl. mask updates) |",
        "|---|---|---|---|",
        f"| none | {overhead['none']['median_ms']:.3f} | 1.00× | 1.00× |",
    ]
    for k, label in (("peftlab", "peftlab PruningCallback (magnitude, cubic)"), ("lightning", "Lightning ModelPruning (global L1, 0.5)")):
        o = overhead[k]
        lines.append(f"| {label} | {o['median_ms']:.3f} | {o['median_ratio']:.3f}× | {o['mean_ratio']:.3f}× |")
    lines.append("")
    lines.append(
        f"The callback's own work per step (re-zeroing pruned weights with one fused multiply, schedule check) measured alone: "
        f"{overhead['hook_us']:.1f} µs, {overhead['hook_us'] / 1e3 / overhead['none']['median_ms']:.2%} of the median step above "
        f"and {overhead['hook_us'] / 1270:.2%} of the 1.27 ms raw PyTorch step in [peer-figures.md](peer-figures.md); the step-ratio columns also carry the machine's noise (other jobs share its 2 cores)."
    )
    lines.append("[peer-figures.md](peer-figures.md): Lightning ModelPruning costs 1.13× per step (1.17× per epoch) on this model.")
    if accuracy:
        lines += [
            "",
            "**Accuracy (digits, default 30-epoch runs, mean test accuracy of the 3 tasks, seeds 1-3)**",
            "",
            "| setting | reached sparsity | per seed (%) | mean (%) | vs dense (points) |",
            "|---|---|---|---|---|",
        ]
        for r in accuracy:
            dense = accuracy[3 if "lr 0.004" in r["setting"] else 0]["mean"]  # each against the dense run with its learning rate
            lines.append(f"| {r['setting']} | {r['sparsity']:.1%} | {', '.join(map(str, r['acc']))} | {r['mean']:.2f} | {r['mean'] - dense:+.2f} |")
        lines.append("")
        lines.append(
            "(structured sparsity = fraction of hidden neurons removed; accuracy is tested on the best checkpoint at final sparsity; "
            "the lr-0.004 rows compare with the dense lr-0.004 run. The last recipe was picked by trying five variants on these same seeds, so its gap is optimistic.)"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and 2 BERT layers (about a minute)")
    p.add_argument("--accuracy", action="store_true", help="also run the 3-seed accuracy comparison (9 full runs)")
    p.add_argument("--write", action="store_true", help="also rewrite the pruning section of docs/benchmarks.md (default: print only)")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    structured = bench_structured(args.quick)
    print("structured", structured, flush=True)
    csr = bench_csr(args.quick)
    print("csr", csr, flush=True)
    overhead = bench_overhead(args.quick)
    print("overhead", overhead, flush=True)
    accuracy = bench_accuracy() if args.accuracy else None
    text = markdown(structured, csr, overhead, accuracy, args.quick, time.perf_counter() - start)
    print(text)
    if args.write:
        write_benchmark_section("pruning", text, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
