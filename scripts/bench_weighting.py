"""Cost of each weighting method: median train-step time and peak memory relative to equal weighting.

Methods run side by side in one process, interleaved round-robin (round r trains every method
for a few steps before round r+1 starts), so machine load affects them alike. Each step is a
real Lightning training step of ``MultiTaskModule`` (forward, weighting, backward(s), clipping
at 1.0, AdamW step), timed by the same ``StepTimer`` callback as ``metrics.json``.

Models: the digits MLP (64-256-256, 3 heads, batch 64); a BERT-base-shaped encoder built
from ``transformers.BertConfig()`` with random weights (no download), seq 128, batch 8, 3
classification heads on the [CLS] features, fully fine-tuned; and the LoRA arm: a MiniLM-L6-shaped
encoder (random weights) with one shared LoRA adapter r = 8 on query/value (``strategy/sharing=peft``),
seq 64, batch 32. ``torchjd-<aggregator>`` arms run the same module, model and batch with torchjd
0.18's ``mtl_backward`` + ``jac_to_grad`` (see ``scripts/weighting_arms.py``), interleaved with ours.

BERT methods share one encoder instance and use SGD (15 models with AdamW state would not fit in RAM).
Memory: resident set size sampled every 10 ms from /proc/self/statm by a thread while
the method's steps run, after ``malloc_trim`` returns freed heap to the OS; reported as the
peak during the steps. The process holds every method's model at once, so the absolute
number includes the other models (and their optimizer state); the *difference* to equal
weighting is what the method itself needs at its peak (per-task gradients, retained graphs).

    python scripts/bench_weighting.py                     # both models, prints the table (--write: into docs/benchmarks.md)
    python scripts/bench_weighting.py --bert-steps 1 --bert-rounds 1   # quicker BERT part
    python scripts/bench_weighting.py --no-bert --no-lora # digits only
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import threading
import time
from pathlib import Path

import lightning as L
import torch

from peftlab.builders import build_datamodule, build_model
from peftlab.callbacks.step_timer import StepTimer
from peftlab.config.compose import compose_train_config
from peftlab.models import MultiTaskModule
from peftlab.reporting.benchmark_doc import write_benchmark_section
from peftlab.tasks import TaskSpec
from weighting_arms import TORCHJD, BertBackbone, TorchJDModule, minilm_config

ROOT = Path(__file__).resolve().parents[1]
METHODS = [
    "equal",
    "fixed",
    "uncertainty",
    "dwa",
    "rlw",
    "famo",
    "gradnorm",
    "gradnorm:representation",
    "pcgrad",
    "pcgrad:representation",
    "cagrad",
    "mgda",
    "mgda:representation",
    "imtl",
    "imtl:representation",
    "db_mtl",
    "stch",
    "gls",
]
BERT_ARMS = ["equal", "pcgrad", "mgda", "imtl", "cagrad", "upgrad"] + list(TORCHJD)
LORA_ARMS = ["equal", "upgrad", "upgrad:representation", "mgda", "pcgrad", "db_mtl", "stch", "gls", "torchjd-upgrad", "torchjd-mgda"]
GRAM_METHODS = ["pcgrad", "mgda", "imtl", "cagrad", "upgrad"]
LOSS_ONLY = {"fixed", "uncertainty", "dwa", "rlw", "famo", "db_mtl", "stch", "gls"}
# LibMTL's ratios from docs/peer-figures.md (3 tasks, same machine kind): (digits, BERT, BERT peak RSS)
LIBMTL = {
    "uncertainty": ("1.08", "1.00", "2.9 GB"),
    "dwa": ("1.05", "1.02", "2.9 GB"),
    "famo": ("1.40", "1.32", "3.0 GB"),
    "gradnorm": ("2.66", "5.78", "7.7 GB"),
    "gradnorm:representation": ("1.70", "1.02", "3.0 GB"),
    "pcgrad": ("2.36", "4.72", "6.0 GB"),
    "cagrad": ("3.74", "3.79", "5.5 GB"),
    "mgda": ("3.75", "4.90", "6.4 GB"),
    "imtl": ("2.73", "7.45", "8.9 GB"),
    "mgda:representation": ("2.94", "1.00", "3.1 GB"),
    "imtl:representation": ("1.74", "0.99", "3.1 GB"),
    "equal": ("1.00", "1.00", "2.9 GB"),
}


def method_overrides(method: str) -> list[str]:
    name, _, mode = method.partition(":")
    return [f"strategy/weighting={name}", "strategy/clipping=norm"] + ([f"strategy.weighting.mode={mode}"] if mode else [])


class PeakRSS:
    """Peak resident memory while the ``with`` block runs (sampled from /proc every 10 ms)."""

    PAGE = 4096

    def __init__(self, enabled: bool = True, every_s: float = 0.01):
        self.enabled, self.every_s = enabled, every_s

    def __enter__(self):
        if not self.enabled:  # a sampling thread competes for the GIL: only for slow (BERT) steps
            self.peak = 0
            return self
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.peak, self._stop = self.rss(), False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every_s)

    def __exit__(self, *exc):
        if self.enabled:
            self._stop = True
            self._thread.join()

    @classmethod
    def rss(cls) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * cls.PAGE


def arm_module(arm: str, backbone, tasks, optimizer, sharing=None) -> MultiTaskModule:
    """One arm: peftlab's ``method[:mode]`` or ``torchjd-<aggregator>`` (torchjd's backward, our module around it)."""
    from hydra.utils import instantiate

    method = "upgrad" if arm.startswith("torchjd-") else arm  # a gradient method: the module takes the per-task path
    cfg = compose_train_config(method_overrides(method), output_dir="/tmp/peftlab-bench/run")
    torch.manual_seed(0)
    kwargs = dict(backbone=backbone, tasks=tasks, weighting=instantiate(cfg.strategy.weighting), clipping=instantiate(cfg.strategy.clipping), optimizer=optimizer)
    if sharing is not None:
        kwargs["sharing"] = sharing
    if arm.startswith("torchjd-"):
        import torchjd.aggregation as agg

        return TorchJDModule(**kwargs, aggregator=TORCHJD[arm](agg))
    return MultiTaskModule(**kwargs)


def token_batches(batch: int, seq: int, vocab: int = 30522) -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(0)
    batches = [
        {"inputs": torch.randint(0, vocab, (batch, seq), generator=gen), "y": torch.randint(0, 2, (batch, 3), generator=gen).float(), "task_mask": torch.ones(batch, 3, dtype=torch.bool)}
        for _ in range(4)
    ]
    return torch.utils.data.DataLoader(batches, batch_size=None)


def bert_models(arms: list[str]) -> tuple[dict[str, MultiTaskModule], object]:
    tasks = [TaskSpec(name=n, label=n, num_classes=2) for n in ("a", "b", "c")]
    torch.manual_seed(0)
    shared = BertBackbone()  # one encoder for all arms: 11 copies + optimizer state would not fit in RAM
    sgd = lambda params: torch.optim.SGD(params, lr=1e-5)  # noqa: E731  stateless: the shared encoder needs no per-arm state
    return {a: arm_module(a, lambda: shared, tasks, sgd) for a in arms}, token_batches(8, 128)


def lora_models(arms: list[str]) -> tuple[dict[str, MultiTaskModule], object]:
    """MiniLM-L6 shape + one shared LoRA adapter (r = 8, α = 16, query/value) per arm, same seed: same weights."""
    from peft import LoraConfig

    from peftlab.sharing import PeftAdapter

    tasks = [TaskSpec(name=n, label=n, num_classes=2) for n in ("a", "b", "c")]
    models = {}
    for a in arms:
        torch.manual_seed(0)
        backbone = BertBackbone(minilm_config())
        lora = PeftAdapter(LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]))
        models[a] = arm_module(a, lambda b=backbone: b, tasks, lambda params: torch.optim.AdamW(params, lr=2e-3), sharing=lora)
    return models, token_batches(32, 64)


def digits_models(methods: list[str]):
    models, dm = {}, None
    for m in methods:
        cfg = compose_train_config(method_overrides(m), output_dir="/tmp/peftlab-bench/run")
        dm = dm or build_datamodule(cfg)
        L.seed_everything(0, verbose=False)
        models[m] = build_model(cfg)
    return models, dm


class StepCPU(L.Callback):
    """CPU time of this process per training step (all threads; ms): on a machine shared with other jobs the
    wall clock counts their load, CPU time counts the work each arm does. Ratios use it."""

    def __init__(self):
        self.step_ms: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step_ms.append((time.process_time() - self._start) * 1000.0)


def measure(models, data, steps: int, rounds: int, warmup: int = 1, memory: bool = False, skip_first: bool = False) -> dict[str, dict]:
    """Interleaved rounds; per method the median step time and the peak RSS (``skip_first``: each fit's first step is a warm-up, not timed)."""
    times = {m: [] for m in models}
    cpu = {m: [] for m in models}
    peaks = {m: 0 for m in models}
    names = list(models)
    for r in range(rounds + warmup):
        # rotate the order every round: the first method of a round pays for the previous
        # round's clean-up (allocator, caches) on a loaded machine
        for m in names[r % len(names) :] + names[: r % len(names)]:
            model = models[m]
            timer, cpu_timer = StepTimer(), StepCPU()
            trainer = L.Trainer(
                accelerator="cpu",
                max_steps=steps,
                limit_val_batches=0,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                use_distributed_sampler=False,
                callbacks=[timer, cpu_timer],
                num_sanity_val_steps=0,
            )
            with PeakRSS(memory) as mem:
                if isinstance(data, L.LightningDataModule):
                    trainer.fit(model, datamodule=data)
                else:
                    trainer.fit(model, train_dataloaders=data)
            if r >= warmup:
                times[m] += timer.step_ms[1:] if skip_first else timer.step_ms
                cpu[m] += cpu_timer.step_ms[1:] if skip_first else cpu_timer.step_ms
                peaks[m] = max(peaks[m], mem.peak)
        print(f"round {r + 1}/{rounds + warmup} done", file=sys.stderr, flush=True)
    return {m: {"wall": statistics.median(times[m]), "ms": statistics.median(cpu[m]), "peak": peaks[m], "n": len(times[m])} for m in models}


def target(method: str) -> str:
    name = method.partition(":")[0]
    if name == "equal":
        return "—"
    if name in LOSS_ONLY:
        return "≤ 1.05"
    if name == "gradnorm":
        return "≤ 1.5"
    return "≤ 3.5" + (" (less)" if ":" in method else "")


def table(digits: dict, bert: dict | None) -> str:
    head = "| method | digits CPU ms/step | digits × equal | LibMTL digits × | BERT CPU s/step | BERT × equal | LibMTL BERT × | BERT peak RSS − equal's | LibMTL BERT peak RSS | target × |\n|---|---|---|---|---|---|---|---|---|---|"
    lines = [head]
    for m in digits:
        d, e = digits[m], digits["equal"]
        lib = LIBMTL.get(m, ("—", "—", "—"))
        if bert and m in bert:
            b, be = bert[m], bert["equal"]
            bcols = f"{b['ms'] / 1000:.2f} | {b['ms'] / be['ms']:.2f} | {lib[1]} | {(b['peak'] - be['peak']) / 2**30:+.2f} GB | {lib[2]}"
        else:
            bcols = f"— | — | {lib[1]} | — | {lib[2]}"
        lines.append(f"| {label(m)} | {d['ms']:.2f} | {d['ms'] / e['ms']:.2f} | {lib[0]} | {bcols} | {target(m)} |")
    return "\n".join(lines)


def label(arm: str) -> str:
    return arm.replace(":", " (") + (")" if ":" in arm else "")


def arm_table(res: dict, matrix_bytes: float | None, unit: str = "s") -> str:
    """Per arm: step time, × equal, × torchjd's best arm of the same run, peak RSS over equal's (GB and in T × P matrices)."""
    jd = [a for a in res if a.startswith("torchjd-")]
    best = min(jd, key=lambda a: res[a]["ms"]) if jd else None
    e = res["equal"]
    lines = [f"| arm | CPU {unit}/step | wall {unit}/step | × equal | × torchjd's best ({best or '—'}) | peak RSS − equal's | in T × P float32 matrices |", "|---|---|---|---|---|---|---|"]
    for a, r in res.items():
        t, wall = (r[k] / (1000 if unit == "s" else 1) for k in ("ms", "wall"))
        vs_jd = f"{r['ms'] / res[best]['ms']:.2f}" if best else "—"
        extra = r["peak"] - e["peak"]
        units = f"{extra / matrix_bytes:.2f}" if matrix_bytes and e["peak"] else "—"
        mem = f"{extra / 2**30:+.2f} GB" if e["peak"] else "—"
        lines.append(f"| {label(a)} | {t:.2f} | {wall:.2f} | {r['ms'] / e['ms']:.2f} | {vs_jd} | {mem} | {units} |")
    return "\n".join(lines)


def shared_matrix_bytes(models: dict, tasks: int = 3) -> float:
    """Bytes of one T × P float32 matrix, P = the trainable shared parameters of the first arm's body."""
    body = next(iter(models.values())).body
    return tasks * 4.0 * sum(p.numel() for p in body.shared_parameters() if p.requires_grad)


def verdicts(bert: dict | None, bert_bytes: float | None, lora: dict | None, digits: dict) -> str:
    """The issue's Measure rows 1-4, each checked against its goal with this run's numbers."""
    out = []
    if bert:
        ours = [m for m in GRAM_METHODS if m in bert]
        jd = [a for a in bert if a.startswith("torchjd-")]
        if ours:
            worst = max(ours, key=lambda m: bert[m]["ms"])
            ratio = bert[worst]["ms"] / bert["equal"]["ms"]
            line = f"- Row 1 (BERT-base, T = 3, SGD): slowest of {', '.join(ours)} is {label(worst)} at {ratio:.2f}× equal (goal ≤ 2.5×: {'met' if ratio <= 2.5 else f'missed by {ratio - 2.5:.2f}×'})"
            if jd:
                best = min(jd, key=lambda a: bert[a]["ms"])
                vs = bert[worst]["ms"] / bert[best]["ms"]
                line += f"; {vs:.2f}× torchjd's best ({best}, {bert[best]['ms'] / bert['equal']['ms']:.2f}× equal) (goal < 1: {'met' if vs < 1 else 'missed'})"
            out.append(line + ".")
            if bert["equal"]["peak"] and bert_bytes:
                units = {m: (bert[m]["peak"] - bert["equal"]["peak"]) / bert_bytes for m in ours}
                w = max(units, key=units.get)
                out.append(
                    f"- Row 2 (peak RSS over equal): at most {units[w]:.2f} T × P float32 matrices ({label(w)}; one matrix = {bert_bytes / 2**30:.2f} GiB) (goal ≤ 1.0: {'met' if units[w] <= 1.0 else f'missed by {units[w] - 1.0:.2f}'})."
                )
    if lora:
        jd = [a for a in lora if a.startswith("torchjd-")]
        if jd:
            best = min(jd, key=lambda a: lora[a]["ms"])
            ours = [m for m in lora if m.partition(":")[0] in GRAM_METHODS]
            parts = [f"{label(m)} {lora[m]['ms'] / lora['equal']['ms']:.2f}× equal = {lora[m]['ms'] / lora[best]['ms']:.2f}× {best}" for m in ours]
            out.append(f"- Row 3 (LoRA arm; goal ≤ 1.0× torchjd's best, {best} at {lora[best]['ms'] / lora['equal']['ms']:.2f}× equal): " + "; ".join(parts) + ".")
    for name, res in (("digits", digits), ("LoRA arm", lora)):
        new = [m for m in ("db_mtl", "stch", "gls") if res and m in res]
        if new:
            out.append(f"- Row 4 ({name}, goal ≤ 1.02× equal): " + ", ".join(f"{m} {res[m]['ms'] / res['equal']['ms']:.2f}×" for m in new) + ".")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help="digits: comma-separated; name or name:representation")
    p.add_argument("--bert-arms", default=",".join(BERT_ARMS), help="BERT-base arms: methods and torchjd-<aggregator>")
    p.add_argument("--lora-arms", default=",".join(LORA_ARMS), help="MiniLM + shared LoRA arms")
    p.add_argument("--digits-steps", type=int, default=20, help="steps per method per round (digits)")
    p.add_argument("--digits-rounds", type=int, default=5, help="interleaved rounds (digits)")
    p.add_argument("--bert-steps", type=int, default=2, help="steps per arm per round (BERT; the first of each is an untimed warm-up)")
    p.add_argument("--bert-rounds", type=int, default=1, help="interleaved rounds (BERT)")
    p.add_argument("--lora-steps", type=int, default=4, help="steps per arm per round (LoRA; the first of each is an untimed warm-up)")
    p.add_argument("--lora-rounds", type=int, default=2, help="interleaved rounds (LoRA)")
    p.add_argument("--no-bert", action="store_true", help="skip the BERT-base arm")
    p.add_argument("--no-lora", action="store_true", help="skip the LoRA arm")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--write", action="store_true", help="also rewrite the weighting section of docs/benchmarks.md (default: print only)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    first_equal = lambda xs: ["equal"] + [m for m in xs if m != "equal"]  # noqa: E731
    methods = first_equal(args.methods.split(","))

    models, dm = digits_models(methods)
    digits = measure(models, dm, args.digits_steps, args.digits_rounds)
    del models
    lora = bert = bert_bytes = None
    if not args.no_lora:
        models, loader = lora_models(first_equal(args.lora_arms.split(",")))
        lora = measure(models, loader, args.lora_steps, args.lora_rounds, warmup=0, skip_first=args.lora_steps > 1)
        del models
    if not args.no_bert:
        models, loader = bert_models(first_equal(args.bert_arms.split(",")))
        bert_bytes = shared_matrix_bytes(models)
        measure({"equal": models["equal"]}, loader, 1, 1, warmup=0)  # untimed: the shared encoder's first-touch costs
        bert = measure(models, loader, args.bert_steps, args.bert_rounds, warmup=0, memory=True, skip_first=args.bert_steps > 1)
        del models
    cmd = "python scripts/bench_weighting.py " + " ".join(a for a in sys.argv[1:] if a != "--write")
    n = lambda res: res["equal"]["n"] if res else 0  # noqa: E731
    warm = ", ".join(
        f"{k}: each fit's first step {'an untimed warm-up' if steps > 1 else 'timed (no warm-up step)'}" for k, steps, res in (("LoRA", args.lora_steps, lora), ("BERT", args.bert_steps, bert)) if res
    )
    text = f"""## Weighting methods: step time and memory relative to equal weighting

Command: `{cmd.strip()}` ({torch.get_num_threads()} threads, torch {torch.__version__}, lightning {L.__version__}; medians of {n(digits)} digits,
{n(lora)} LoRA-arm and {n(bert)} BERT steps per arm, interleaved round-robin in one process; {warm}). The machine (2 cores) is shared with other jobs and was loaded: read ratios, not absolute times, and
expect a few percent of noise (the `fixed` vs `equal` gap shows the digits run's noise floor).

Against the issue's goals:
{verdicts(bert, bert_bytes, lora, digits)}

### BERT-base shape, T = 3, SGD (one shared random encoder, seq 128, batch 8, full fine-tuning)

{arm_table(bert, bert_bytes) if bert else "not run"}

### LoRA arm: MiniLM-L6 shape + one shared LoRA r = 8 (query/value), T = 3, batch 32, seq 64, AdamW

{arm_table(lora, None, unit="ms") if lora else "not run"}

### Digits MLP (64-256-256, batch 64, AdamW) and LibMTL's figures

{table(digits, bert)}

How to read it:
- *× equal* = median step CPU time (this process, all threads) / equal weighting's, measured side by side: on this
  loaded machine the wall clock mostly measures other jobs (wall times are shown too); *× torchjd's best* = the same over the fastest
  `torchjd-*` arm of the same run (torchjd 0.18 `mtl_backward` on the shared features, then `jac_to_grad` with the
  aggregator, Gramian path where the aggregator has one). The FLOP floor of T full backward passes is (1 + 2T)/3 = 2.33×.
- These arms' batches label every row for every task, so the per-task gradients need the batched pass (a batch
  whose rows each belong to one task takes one backward split by rows: `src/peftlab/models/task_rows.py`,
  measured on a decoder in the causal-LM section below).
- peftlab's per-task path: one batched backward (`torch.autograd.grad(..., is_grads_batched=True)`) gives per-parameter
  [T, …] blocks; methods needing only the Gram matrix (PCGrad, MGDA, IMTL, CAGrad, UPGrad, …) sum G Gᵀ block by block and
  write Σ α_i g_i into `.grad` block by block, never building a flat T × P copy.
- *peak RSS − equal's*: peak resident memory while the arm's steps ran (sampled every 10 ms from /proc/self/statm after
  `malloc_trim`), minus equal weighting's; *in T × P matrices*: that difference over one T × P float32 matrix of the trainable
  shared parameters. All arms live in one process, so absolute values are not comparable to LibMTL's single-model figures.
- LibMTL columns are copied from [peer-figures.md](peer-figures.md) (its BERT run used seq 64; ours seq 128).
- Loss-based methods (incl. DB-MTL, STCH, GLS) target ≤ 1.05× (≤ 1.02× for the three new ones), GradNorm ≤ 1.5×.
"""
    print(text)
    if args.write:
        write_benchmark_section("weighting", text, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
