"""Language-model sharing policies on a BERT-base-shaped random encoder, side by side on the CPU.

1. Framework overhead: peftlab's training step (MultiTaskModule under Lightning, full fine-tuning,
   equal weighting, norm clipping, AdamW) vs a hand-written PyTorch loop on the same encoder and
   batches. Target: <= 1.03x.
2. Step time, peak memory and trainable share for strategy/sharing = full, frozen, bitfit and
   LoRA (r=8, alpha=16 on query/value, the recipe strategy=lora_share). Targets: LoRA <= 0.75x the
   step time and <= 0.7x the peak memory of full fine-tuning; trainable ~0.27 % + heads.

Step times: every variant lives in this one process and their epochs are interleaved, so a
slower or faster moment of a shared machine hits them all alike; medians over epochs.
Peak memory: each variant is trained again in its own fresh process (a process's peak resident
memory cannot be reset), reported as peak RSS minus the RSS after imports: weights, gradients,
optimizer state and activations.

    python scripts/bench_nlp.py [--quick] [--epochs 4] [--steps 3] [--threads N] [--write]

--quick: a 2-layer encoder of the same width, seq 64 (a check that the script runs, not a result).
--write: put the table into docs/benchmarks.md (section "nlp").
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from peftlab.clipping import NormClipping
from peftlab.models import HFBackbone, MultiTaskModule
from peftlab.reporting import count_parameters
from peftlab.reporting.benchmark_doc import write_benchmark_section
from peftlab.sharing import BitFit, FrozenBackbone, FullSharing, PeftAdapter
from peftlab.tasks import TaskSpec
from peftlab.weighting import EqualWeighting

ROOT = Path(__file__).resolve().parents[1]
TASKS = [TaskSpec(name="a", label="a", num_classes=2), TaskSpec(name="b", label="b", num_classes=3), TaskSpec(name="c", label="c", num_classes=0)]
POLICIES = ("full", "frozen", "bitfit", "lora")
BATCH, VOCAB = 8, 30522


def shape(quick: bool) -> dict:
    """Encoder layers and sequence length: BERT-base (12 layers, hidden 768, seq 128) or the quick check."""
    return {"layers": 2, "seq": 64} if quick else {"layers": 12, "seq": 128}


def save_encoder(path: Path, layers: int) -> Path:
    """A randomly initialised BERT-base-shaped encoder (no dropout, so every variant computes alike) saved with save_pretrained."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(num_hidden_layers=layers, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).save_pretrained(path)
    return path


def sharing(name: str):
    """The policy behind ``strategy/sharing=<name>`` (lora: the strategy=lora_share adapter)."""
    import peft

    if name == "lora":
        return PeftAdapter(peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]))
    return {"full": FullSharing, "frozen": FrozenBackbone, "bitfit": BitFit}[name]()


def module(path: Path, name: str) -> MultiTaskModule:
    """The MultiTaskModule a run with model=hf, strategy/sharing=<name>, equal weighting, norm clipping builds."""
    torch.manual_seed(0)
    return MultiTaskModule(
        backbone=functools.partial(HFBackbone, name_or_path=str(path), pooling="cls"),
        tasks=TASKS,
        sharing=sharing(name),
        weighting=EqualWeighting(),
        clipping=NormClipping(max_norm=1.0),
        optimizer=lambda params: torch.optim.AdamW(params, lr=2e-5 if name == "full" else 5e-4, weight_decay=0.01),
    )


def batches(n: int, seq: int) -> list[dict]:
    """Fixed random token batches (full length, all tasks labelled)."""
    gen = torch.Generator().manual_seed(0)
    y = lambda: torch.stack([torch.randint(0, 2, (BATCH,), generator=gen).float(), torch.randint(0, 3, (BATCH,), generator=gen).float(), torch.randn(BATCH, generator=gen)], 1)  # noqa: E731
    return [
        {
            "inputs": {"input_ids": torch.randint(0, VOCAB, (BATCH, seq), generator=gen), "attention_mask": torch.ones(BATCH, seq, dtype=torch.long)},
            "y": y(),
            "task_mask": torch.ones(BATCH, 3, dtype=torch.bool),
        }
        for _ in range(n)
    ]


class EpochTimer(L.Callback):
    """Milliseconds per optimizer step of each training epoch."""

    def __init__(self):
        self.per_step_ms: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.start, self.steps0 = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module):
        self.per_step_ms.append((time.perf_counter() - self.start) * 1000 / max(1, trainer.global_step - self.steps0))


def lightning_epoch(model: MultiTaskModule, loader, timer: EpochTimer) -> None:
    """One epoch of peftlab's step under a fresh Trainer (its start-up falls outside the timed epoch)."""
    L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[timer],
        log_every_n_steps=50,
    ).fit(model, train_dataloaders=loader)


def raw_epoch(model: MultiTaskModule, loader) -> float:
    """One epoch of the hand-written loop (sum of task losses, backward, clip 1.0, AdamW); ms per step.

    Its AdamW is built when the epoch starts, as Lightning builds peftlab's (configure_optimizers)
    at the start of each one-epoch fit, so both sides allocate the optimizer state in the timed epoch.
    """
    model.train()
    start, steps = time.perf_counter(), 0
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=2e-5, weight_decay=0.01)
    for batch in loader:
        losses = model.task_losses(model(batch["inputs"]), batch)
        loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps += 1
    return (time.perf_counter() - start) * 1000 / steps


def memory_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MB (Linux; both start afresh at exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def peak_memory_child(path: Path, name: str, steps: int, seq: int) -> None:
    """(run in a fresh process) train ``name`` for ``steps`` steps; print peak RSS above the post-import RSS, in MB."""
    base = memory_mb("VmRSS")
    model = module(path, name)
    loader = torch.utils.data.DataLoader(batches(steps, seq), batch_size=None)
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False).fit(
        model, train_dataloaders=loader
    )
    print(json.dumps({"peak_mb": memory_mb("VmHWM") - base}))


def peak_memory(path: Path, name: str, steps: int, seq: int, threads: int) -> float:
    cmd = [sys.executable, __file__, "--memory-of", name, "--model-dir", str(path), "--steps", str(steps), "--seq", str(seq), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2-layer encoder, seq 64: checks the script runs")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per variant (interleaved); the first is a warm-up and dropped")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per epoch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_of:
        return peak_memory_child(Path(args.model_dir), args.memory_of, args.steps, args.seq)

    dims = shape(args.quick)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_encoder(Path(tmp) / "encoder", dims["layers"])
        loader = torch.utils.data.DataLoader(batches(args.steps, dims["seq"]), batch_size=None)
        raw_model = module(path, "full")
        models = {name: module(path, name) for name in POLICIES}
        timers = {name: EpochTimer() for name in POLICIES}
        raw_ms: list[float] = []
        for epoch in range(args.epochs):
            raw_ms.append(raw_epoch(raw_model, loader))
            for name in POLICIES:
                lightning_epoch(models[name], loader, timers[name])
            print(f"epoch {epoch}: hand-written {raw_ms[-1]:.0f} ms/step, " + ", ".join(f"{n} {t.per_step_ms[-1]:.0f}" for n, t in timers.items()), file=sys.stderr, flush=True)
        step_ms = {name: statistics.median(t.per_step_ms[1:] or t.per_step_ms) for name, t in timers.items()}
        raw = statistics.median(raw_ms[1:] or raw_ms)
        params = {name: count_parameters(m) for name, m in models.items()}
        del models, raw_model
        memory = {}
        for name in POLICIES:
            memory[name] = peak_memory(path, name, 1, dims["seq"], args.threads)
            print(f"peak memory {name}: {memory[name]:.0f} MB", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started

    heads = params["frozen"]["trainable"]  # frozen trains the heads and nothing else
    what = f"BERT-base-shaped random encoder ({dims['layers']} layers, hidden 768), batch {BATCH} x seq {dims['seq']}, CPU, {args.threads} threads"
    lines = [
        f"{what}; {args.epochs - 1} timed epochs of {args.steps} steps per variant, interleaved; measured in {wall:.0f} s.",
        "",
        f"Framework overhead (full fine-tuning): hand-written loop {raw:.0f} ms/step, peftlab {step_ms['full']:.0f} ms/step: "
        f"**{step_ms['full'] / raw:.3f}x** (target <= 1.03x); each timed epoch of both builds its AdamW when it starts.",
        "",
        "| strategy/sharing | trainable | trainable % | step ms | step vs full | peak MB | memory vs full |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in POLICIES:
        p = params[name]
        lines.append(
            f"| {name} | {p['trainable']:,} | {p['trainable_pct']:.3f} % | {step_ms[name]:.0f} | {step_ms[name] / step_ms['full']:.2f}x | {memory[name]:.0f} | {memory[name] / memory['full']:.2f}x |"
        )
    lines += [
        "",
        f"Heads (3 tasks: 2 + 3 classes + 1 regression on 768 features; all that frozen trains): {heads:,} parameters; "
        f"LoRA r=8 on query/value without the heads: {params['lora']['trainable'] - heads:,} = "
        f"{100 * (params['lora']['trainable'] - heads) / (params['lora']['total'] - heads):.3f} % of the encoder + adapter. "
        "Targets: lora <= 0.75x full step time, <= 0.7x full peak memory.",
        "peak MB: peak resident memory of a fresh process training 1 step (AdamW state is allocated in it), minus its resident memory after imports.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        if args.quick:
            sys.exit("--write needs the full-size run (drop --quick)")
        write_benchmark_section("nlp", f"## Language models: sharing policies on a BERT-base shape (`scripts/bench_nlp.py`)\n\n{text}", ROOT / "docs" / "benchmarks.md")
        print("wrote docs/benchmarks.md (section nlp)")


if __name__ == "__main__":
    main()
