"""Task-routed LoRA and transformer pruning benchmark: what each costs or buys, side by side in one run.

    python scripts/bench_task_lora.py [--quick] [--write] [--threads N]

1. Training step time and memory of ``task_lora`` (one LoRA per task, rows routed per task,
   peftlab.sharing.task_lora) vs one shared peft LoRA, on a BERT-base-shaped encoder (random init,
   hidden 768, 12 heads, FFN 3072; 6 layers, 2 with --quick), seq 128, batch 8, mixed batches of
   3 tasks (one task per row), r = 8 / alpha = 16 on query/value, a head per task, AdamW.
   Step times are medians of interleaved repeats; memory is (a) the bytes autograd saves for
   backward in one step (exact, from ``saved_tensors_hooks``) and (b) the peak resident-memory
   growth of a step, each kind measured in a fresh subprocess.
2. Inference latency of the exported model (attention heads and FFN units physically removed,
   pruning/export.compact) vs dense at 30 % and 50 %, batch 32, seq 128, whole BertModel
   (embeddings included). Six layers, not twelve, keep a run within ~15 minutes on a shared
   2-core machine; every layer has the same shape, so the ratios hold per layer.
Targets (issue 11): task_lora <= 1.15x lora step time; exported 50 % <= 0.6x dense latency.
Prints a Markdown table; writes the `task_lora` section of docs/benchmarks.md only with --write.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from peftlab.callbacks.pruning import PruningCallback  # noqa: E402
from peftlab.pruning.compaction import compact  # noqa: E402
from peftlab.pruning.criteria import Heads, Neurons  # noqa: E402
from peftlab.reporting.benchmark_doc import write_benchmark_section  # noqa: E402
from peftlab.sharing.task_lora import TaskLoRA  # noqa: E402

TASKS = ["a", "b", "c"]
SEQ = 128


def bert_config(layers: int):
    from transformers import BertConfig

    return BertConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=layers, vocab_size=30522)


class ClsBackbone(nn.Module):
    """A BertModel with CLS pooling (``model`` + ``out_dim``: the shape of model=hf's backbone)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.out_dim = model, model.config.hidden_size

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin so load drifts hit all alike."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------ 1. training step
def build_trainers(layers: int, batch: int):
    """``{"lora": step_fn, "task_lora": step_fn}`` on the same random base weights and batch."""
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import BertModel

    torch.manual_seed(0)
    base = BertModel(bert_config(layers))
    g = torch.Generator().manual_seed(1)
    inputs = {"input_ids": torch.randint(1000, 30000, (batch, SEQ), generator=g), "attention_mask": torch.ones(batch, SEQ, dtype=torch.long)}
    task_ids = torch.arange(batch) % len(TASKS)  # mixed batch: one task per row, every task present
    task_mask = nn.functional.one_hot(task_ids, len(TASKS)).bool()
    y = torch.randint(0, 2, (batch,), generator=g)

    shared = copy.deepcopy(base)
    for p in shared.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]), shared)
    shared_body = ClsBackbone(shared)
    routed_body = TaskLoRA(r=8, lora_alpha=16, target_modules=["query", "value"]).build(lambda: ClsBackbone(copy.deepcopy(base)), TASKS)

    def trainer(features_fn, trainable):
        heads = nn.ModuleDict({t: nn.Linear(768, 2) for t in TASKS})
        opt = torch.optim.AdamW(list(trainable) + list(heads.parameters()), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            feats = features_fn()
            loss = sum(nn.functional.cross_entropy(heads[t](feats[t][task_mask[:, i]]), y[task_mask[:, i]]) for i, t in enumerate(TASKS))
            loss.backward()
            opt.step()

        return step

    lora_step = trainer(lambda: {t: f for f in [shared_body(**inputs)] for t in TASKS}, [p for p in shared.parameters() if p.requires_grad])
    task_step = trainer(lambda: routed_body(**inputs, task_mask=task_mask), routed_body.trainable_parameters())
    counts = {"lora": sum(p.numel() for p in shared.parameters() if p.requires_grad), "task_lora": sum(p.numel() for p in routed_body.trainable_parameters())}
    return {"lora": lora_step, "task_lora": task_step}, counts


def saved_bytes(step) -> int:
    """Bytes autograd keeps for backward during one step (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t):
        if t.device.type == "cpu":
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def memory_probe(kind: str, layers: int, batch: int) -> dict:
    """Run in a fresh process: saved-for-backward bytes and peak RSS growth of one step of ``kind``."""
    steps, _ = build_trainers(layers, batch)
    step = steps[kind]
    saved = saved_bytes(step)  # first step: allocates optimizer state too
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/statm") as f:
        rss_now = int(f.read().split()[1]) * resource.getpagesize() // 1024
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"saved_mb": saved / 2**20, "peak_growth_mb": max(peak - rss_now, 0) / 1024, "peak_mb": peak / 1024, "maxrss_before_mb": before / 1024}


def bench_training(quick: bool, threads: int) -> dict:
    layers, batch = (2 if quick else 6), 8
    steps, counts = build_trainers(layers, batch)
    t = interleaved(steps, repeats=3 if quick else 5)
    mem = {}
    for kind in steps:
        out = subprocess.run(
            [sys.executable, __file__, "--probe", kind, "--layers", str(layers), "--threads", str(threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        mem[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"layers": layers, "batch": batch, "time": t, "mem": mem, "trainable": counts}


# ------------------------------------------------------------ 2. export latency
def bench_export(quick: bool) -> dict:
    from transformers import BertModel

    layers, batch = (2 if quick else 6), 32
    torch.manual_seed(0)
    dense = BertModel(bert_config(layers)).eval()
    crit = [
        (Heads(), {"include": r"attention\.(self\.(query|key|value)|output\.dense)"}),
        (Neurons(), {"include": r"(intermediate|output)\.dense\.weight$", "exclude": "attention"}),
    ]
    models, shapes, params = {"dense": dense}, {}, {}
    ids = torch.randint(1000, 30000, (batch, SEQ), generator=torch.Generator().manual_seed(2))
    for s in (0.3, 0.5):
        m = copy.deepcopy(dense)
        holder = nn.Module()
        holder.body = m.encoder
        for c, kw in crit:
            cb = PruningCallback(criterion=c, scope="body", **kw)
            cb.attach(holder)
            cb.update_masks(s)
        with torch.no_grad():
            masked = m(ids[:2]).last_hidden_state
            compact(holder)
            diff = float((m(ids[:2]).last_hidden_state - masked).abs().max())
        models[f"{s:.0%}"] = m
        layer = m.encoder.layer[0]
        shapes[f"{s:.0%}"] = f"{layer.attention.self.num_attention_heads} heads, FFN {layer.intermediate.dense.out_features}, max abs diff masked vs exported {diff:.1e}"
    for k, m in models.items():
        params[k] = sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        t = interleaved({k: (lambda m=m: m(input_ids=ids)) for k, m in models.items()}, repeats=3 if quick else 5)
    return {"layers": layers, "batch": batch, "time": t, "shapes": shapes, "params": params}


# ------------------------------------------------------------------- report
def report(train: dict, export: dict, threads: int, quick: bool) -> str:
    tl, lo = train["time"]["task_lora"], train["time"]["lora"]
    m = train["mem"]
    lines = [
        f"Measured by `python scripts/bench_task_lora.py{' --quick' if quick else ''}` ({threads} intra-op thread(s), CPU; "
        "the 2-core machine was shared with other jobs, so absolute times are noisy — ratios are from interleaved repeats).",
        "",
        f"**Training step, BERT-base shape ({train['layers']} layers), seq {SEQ}, batch {train['batch']}, mixed batches of 3 tasks, r = 8 on query/value**",
        "",
        "| sharing | trainable (adapters) | step (median) | vs lora | saved for backward | peak RSS growth of a step |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("lora", "task_lora"):
        lines.append(
            f"| {kind} | {train['trainable'][kind]:,} | {train['time'][kind] * 1e3:.0f} ms | {train['time'][kind] / lo:.3f}x | "
            f"{m[kind]['saved_mb']:.0f} MB ({m[kind]['saved_mb'] / m['lora']['saved_mb']:.3f}x) | {m[kind]['peak_growth_mb']:.0f} MB |"
        )
    lines += [
        "",
        f"task_lora / lora step time: **{tl / lo:.3f}x** (target <= 1.15x). Saved-for-backward bytes are exact; peak RSS growth "
        "depends on how the allocator reuses freed memory and moved by about 100 MB between runs here, so read it as a rough figure.",
        "",
        f"**Inference, exported model vs dense, BERT-base shape ({export['layers']} layers), batch {export['batch']}, seq {SEQ}: heads and FFN units removed**",
        "",
        "| model | shape (layer 0) | params | latency (median) | vs dense |",
        "|---|---|---|---|---|",
    ]
    d = export["time"]["dense"]
    for k, t in export["time"].items():
        lines.append(f"| {k} | {export['shapes'].get(k, '12 heads, FFN 3072')} | {export['params'][k] / 1e6:.1f} M | {t * 1e3:.0f} ms | {t / d:.3f}x |")
    lines += ["", f"Exported 50 % / dense latency: **{export['time']['50%'] / d:.3f}x** (target <= 0.6x)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers and 3 repeats instead of 6 and 5")
    parser.add_argument("--write", action="store_true", help="write the task_lora section of docs/benchmarks.md")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: the machine is shared)")
    parser.add_argument("--probe", choices=["lora", "task_lora"], help=argparse.SUPPRESS)  # internal: memory subprocess
    parser.add_argument("--layers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(memory_probe(args.probe, args.layers, 8)))
        return
    train = bench_training(args.quick, args.threads)
    export = bench_export(args.quick)
    text = report(train, export, args.threads, args.quick)
    print(text)
    if args.write:
        write_benchmark_section("task_lora", text, ROOT / "docs" / "benchmarks.md")
        print("wrote docs/benchmarks.md (task_lora section)")


if __name__ == "__main__":
    main()
