"""Cost of each weighting method: median train-step time and peak memory relative to equal weighting.

Methods run side by side in one process, interleaved round-robin (round r trains every method
for a few steps before round r+1 starts), so machine load affects them alike. Each step is a
real Lightning training step of ``MultiTaskModule`` (forward, weighting, backward(s), clipping
at 1.0, AdamW step), timed by the same ``StepTimer`` callback as ``metrics.json``.

Models: the digits MLP (64-256-256, 3 heads, batch 64) and a BERT-base-shaped encoder built
from ``transformers.BertConfig()`` with random weights (no download), seq 128, batch 8, 3
classification heads on the [CLS] features.

BERT methods share one encoder instance and use SGD (15 models with AdamW state would not fit in RAM).
Memory: resident set size sampled every 10 ms from /proc/self/statm by a thread while
the method's steps run, after ``malloc_trim`` returns freed heap to the OS; reported as the
peak during the steps. The process holds every method's model at once, so the absolute
number includes the other models (and their optimizer state); the *difference* to equal
weighting is what the method itself needs at its peak (per-task gradients, retained graphs).

    python scripts/bench_weighting.py                     # both models, prints the table (--write: into docs/benchmarks.md)
    python scripts/bench_weighting.py --bert-steps 1 --bert-rounds 1   # quicker BERT part
    python scripts/bench_weighting.py --no-bert           # digits only
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
from torch import nn

from peftlab.builders import build_datamodule, build_model
from peftlab.callbacks.step_timer import StepTimer
from peftlab.config.compose import compose_train_config
from peftlab.models import MultiTaskModule
from peftlab.reporting.benchmark_doc import write_benchmark_section
from peftlab.tasks import TaskSpec

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
]
LOSS_ONLY = {"fixed", "uncertainty", "dwa", "rlw", "famo"}
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


class BertBackbone(nn.Module):
    """A randomly initialised BERT-base encoder; features = the [CLS] hidden state."""

    def __init__(self, input_shape=None):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.bert = BertModel(BertConfig(), add_pooling_layer=False)
        self.out_dim = self.bert.config.hidden_size

    def forward(self, x):
        return self.bert(input_ids=x).last_hidden_state[:, 0]


def bert_models(methods: list[str]) -> tuple[dict[str, MultiTaskModule], object]:
    from hydra.utils import instantiate

    tasks = [TaskSpec(name=n, label=n, num_classes=2) for n in ("a", "b", "c")]
    torch.manual_seed(0)
    shared = BertBackbone()  # one encoder for all methods: 15 copies + optimizer state would not fit in RAM
    models = {}
    for m in methods:
        cfg = compose_train_config(method_overrides(m), output_dir="/tmp/peftlab-bench/run")
        torch.manual_seed(0)
        models[m] = MultiTaskModule(
            backbone=lambda: shared,
            tasks=tasks,
            weighting=instantiate(cfg.strategy.weighting),
            clipping=instantiate(cfg.strategy.clipping),
            optimizer=lambda params: torch.optim.SGD(params, lr=1e-5),  # stateless: the shared encoder needs no per-method state
        )
    gen = torch.Generator().manual_seed(0)
    batches = [{"inputs": torch.randint(0, 30522, (8, 128), generator=gen), "y": torch.randint(0, 2, (8, 3), generator=gen).float(), "task_mask": torch.ones(8, 3, dtype=torch.bool)} for _ in range(4)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    return models, loader


def digits_models(methods: list[str]):
    models, dm = {}, None
    for m in methods:
        cfg = compose_train_config(method_overrides(m), output_dir="/tmp/peftlab-bench/run")
        dm = dm or build_datamodule(cfg)
        L.seed_everything(0, verbose=False)
        models[m] = build_model(cfg)
    return models, dm


def measure(models, data, steps: int, rounds: int, warmup: int = 1, memory: bool = False) -> dict[str, dict]:
    """Interleaved rounds; per method the median step time and the peak RSS."""
    times = {m: [] for m in models}
    peaks = {m: 0 for m in models}
    names = list(models)
    for r in range(rounds + warmup):
        # rotate the order every round: the first method of a round pays for the previous
        # round's clean-up (allocator, caches) on a loaded machine
        for m in names[r % len(names) :] + names[: r % len(names)]:
            model = models[m]
            timer = StepTimer()
            trainer = L.Trainer(
                accelerator="cpu",
                max_steps=steps,
                limit_val_batches=0,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                use_distributed_sampler=False,
                callbacks=[timer],
                num_sanity_val_steps=0,
            )
            with PeakRSS(memory) as mem:
                if isinstance(data, L.LightningDataModule):
                    trainer.fit(model, datamodule=data)
                else:
                    trainer.fit(model, train_dataloaders=data)
            if r >= warmup:
                times[m] += timer.step_ms
                peaks[m] = max(peaks[m], mem.peak)
        print(f"round {r + 1}/{rounds + warmup} done", file=sys.stderr, flush=True)
    return {m: {"ms": statistics.median(times[m]), "peak": peaks[m], "n": len(times[m])} for m in models}


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
    head = "| method | digits ms/step | digits × equal | LibMTL digits × | BERT s/step | BERT × equal | LibMTL BERT × | BERT peak RSS − equal's | LibMTL BERT peak RSS | target × |\n|---|---|---|---|---|---|---|---|---|---|"
    lines = [head]
    for m in digits:
        d, e = digits[m], digits["equal"]
        lib = LIBMTL.get(m, ("—", "—", "—"))
        if bert and m in bert:
            b, be = bert[m], bert["equal"]
            bcols = f"{b['ms'] / 1000:.2f} | {b['ms'] / be['ms']:.2f} | {lib[1]} | {(b['peak'] - be['peak']) / 2**30:+.2f} GB | {lib[2]}"
        else:
            bcols = f"— | — | {lib[1]} | — | {lib[2]}"
        lines.append(f"| {m.replace(':', ' (')}{')' if ':' in m else ''} | {d['ms']:.2f} | {d['ms'] / e['ms']:.2f} | {lib[0]} | {bcols} | {target(m)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated; name or name:representation")
    p.add_argument("--digits-steps", type=int, default=20, help="steps per method per round (digits)")
    p.add_argument("--digits-rounds", type=int, default=5, help="interleaved rounds (digits)")
    p.add_argument("--bert-steps", type=int, default=2, help="steps per method per round (BERT)")
    p.add_argument("--bert-rounds", type=int, default=2, help="interleaved rounds (BERT)")
    p.add_argument("--no-bert", action="store_true", help="skip the BERT-shaped model")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--write", action="store_true", help="also rewrite the weighting section of docs/benchmarks.md (default: print only)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    if methods[0] != "equal":
        methods = ["equal"] + [m for m in methods if m != "equal"]

    models, dm = digits_models(methods)
    digits = measure(models, dm, args.digits_steps, args.digits_rounds)
    del models
    bert = None
    if not args.no_bert:
        models, loader = bert_models(methods)
        bert = measure(models, loader, args.bert_steps, args.bert_rounds, memory=True)
    cmd = "python scripts/bench_weighting.py " + " ".join(a for a in sys.argv[1:] if a != "--write")
    n_d = digits["equal"]["n"]
    n_b = bert["equal"]["n"] if bert else 0
    text = f"""## Weighting methods: step time and memory relative to equal weighting

Command: `{cmd.strip()}` ({torch.get_num_threads()} threads; BERT: one shared randomly initialised encoder, SGD, torch {torch.__version__}, lightning {L.__version__},
3 tasks, clipping `norm` 1.0, AdamW; medians of {n_d} digits steps and {n_b} BERT steps per method, interleaved
round-robin in one process; the `fixed` vs `equal` gap shows the noise floor of the run).

{table(digits, bert)}

How to read it:
- *× equal* = median step time / equal weighting's, measured side by side. Targets from the issue:
  loss-only methods ≤ 1.05, GradNorm ≤ 1.5, per-task-gradient methods ≤ T + 0.5 = 3.5 (less in representation mode).
  The lower bound for a method that needs T gradients of all shared parameters is about (1 + 2T)/3 = 2.33×.
- *BERT peak RSS − equal's*: peak resident memory while the method's steps ran (sampled every 10 ms from
  /proc/self/statm after `malloc_trim`), minus equal weighting's. All models live in the same process, so absolute
  values are not comparable to LibMTL's single-model figure (EW = 2.9 GB there); the difference is what the method
  needs on top of a plain step. Parameter mode stores T × shared parameters in float32 (3 × 85 M × 4 B ≈ 1.0 GB for the
  BERT encoder without embeddings' unused rows; the embedding matrix is included: 3 × 109 M × 4 B ≈ 1.3 GB) — the same
  matrix LibMTL builds; representation mode stores T × batch × 768 floats (tiny) and backpropagates once through the encoder.
- LibMTL columns are copied from [peer-figures.md](peer-figures.md) (its BERT run used seq 64; ours seq 128).
- `fixed` (α = 1) does the same work as `equal`: the gap between the two is this run's noise floor.
"""
    print(text)
    if args.write:
        write_benchmark_section("weighting", text, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
