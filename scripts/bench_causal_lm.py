"""Causal-LM costs on a GPT-2-small-shaped decoder (random init, no download), CPU, side by side.

One process builds a ``GPT2Config()`` decoder (124 M parameters; ``--layers`` shrinks it for a
quick look) and times, round by round with the variants interleaved, on random token batches of
``--batch`` x ``--seq`` tokens (the order of the variants rotates from round to round; the first quarter of each row a prompt, masked out of the loss):

- **step**: peftlab's causal-LM training step (the module's forward, the causal_lm task's
  response-only loss, backward, AdamW) vs a hand-written loop on a copy of the same weights
  (``model(...).logits``, cross-entropy on the labels shifted by one with ``ignore_index=-100``
  as transformers' own loss computes it, backward, AdamW);
- **LoRA**: the shared-LoRA step (``strategy=lora_share``: r 8 on ``c_attn``) vs the full
  fine-tuning step: time and peak memory;
- **task_lora**: one LoRA adapter per task (``strategy=task_lora``, 3 causal-LM tasks, r 8 on
  ``c_attn``, every batch mixing the three tasks' rows, each row routed through its own adapter) vs
  one shared adapter (``strategy=lora_share``) on the same 3 tasks and the same mixed batch: step time;
- **checkpointing**: ``model.gradient_checkpointing=true`` vs false: peak activation memory and time;
- **gradient methods**: UPGrad and MGDA on 3 causal-LM tasks sharing one LoRA adapter (peftlab's
  per-task path: one batched backward, the method's combination) vs torchjd 0.18 (``autojac.backward``
  + ``jac_to_grad`` with its UPGrad / MGDA) on the same mixed batch; ``--no-gradient-methods`` skips them;
- **generation**: peftlab's greedy generation (KV cache) vs a plain ``model.generate(do_sample=False)``
  loop on the same weights and prompts: tokens per second (both must give the same tokens).

Memory on a CPU: the process re-starts itself with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed
tensors go back to the OS, and a thread samples the resident set (RSS) every millisecond during a
step. *Peak memory* of a step = the step's RSS peak above the RSS at its start + the bytes of the
parameters and optimizer state held before it (counted from the tensors); *activation memory* =
what the RSS grew by from the start of the step to the end of the forward (the loss computed: what
is kept for the backward). Times are medians over rounds.

    python scripts/bench_causal_lm.py [--rounds 3] [--steps 1] [--layers 12] [--threads N] [--write]

``--write`` replaces this script's section of docs/benchmarks.md with the table printed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
GOALS = {
    "upgrad_vs_torchjd": ("<=", 1.0),
    "mgda_vs_torchjd": ("<=", 1.0),
    "step": ("<=", 1.03),
    "lora_time": ("<=", 0.7),
    "lora_memory": ("<=", 0.6),
    "ckpt_memory": ("<=", 0.6),
    "ckpt_time": ("<=", 1.35),
    "task_lora_time": ("<=", 1.15),
    "generation": (">=", 0.95),
}


class PeakRSS:
    """The highest resident set size seen by a 1 ms sampling thread while in the ``with`` block."""

    def __enter__(self) -> "PeakRSS":
        self.process, self.start, self.peak, self.running = psutil.Process(), 0, 0, True
        self.start = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    def mark(self) -> None:
        """Remember the RSS now (after the forward: what it keeps for the backward is held)."""
        self.marked = self.process.memory_info().rss

    @property
    def kept_for_backward(self) -> int:
        """Bytes the RSS grew from the block's start to :meth:`mark`."""
        return self.marked - self.start

    @property
    def above_start(self) -> int:
        """Bytes of the peak above the RSS at the block's start."""
        return self.peak - self.start


def tensor_bytes(tensors) -> int:
    """Bytes held by ``tensors`` (None skipped)."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def held_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Parameters and optimizer state held between steps (gradients are freed: ``set_to_none``)."""
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return tensor_bytes(model.parameters()) + tensor_bytes(state)


def build_module(layers: int, extra: list[str], tasks: int = 1):
    """peftlab's causal-LM module on a random GPT-2-small-shaped decoder with ``tasks`` causal-LM tasks
    (``extra``: more overrides)."""
    from peftlab.builders import build_model
    from peftlab.config.compose import compose_train_config

    names = ["lm"] if tasks == 1 else [f"lm{t}" for t in range(tasks)]
    overrides = [
        "data=synthetic_generation",
        "data.tasks=[" + ", ".join(f"{{name: {n}, type: causal_lm}}" for n in names) + "]",
        "model=hf_causal_lm",
        f"model.config={{model_type: gpt2, n_layer: {layers}, resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}}",  # no dropout: both steps compute the same loss
        "strategy/clipping=none",
        "model.optimizer.lr=1e-4",
        *extra,
    ]
    cfg = compose_train_config(overrides, output_dir="/tmp/peftlab-bench/causal_lm")
    module = build_model(cfg)
    module.train()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)
    return module, optimizer


def batch_of(size: int, seq: int, vocab: int, seed: int, tasks: int = 1) -> dict:
    """Random token rows, the first quarter of each a prompt (label -100), as the datamodule serves them;
    with ``tasks`` > 1, row ``b`` belongs to task ``b % tasks`` (a mixed batch)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (size, seq), generator=gen)
    labels = ids.clone()
    labels[:, : seq // 4] = -100
    mask = torch.arange(size)[:, None] % tasks == torch.arange(tasks)[None, :]
    return {"inputs": {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "lm_labels": labels, "y": mask.float(), "task_mask": mask}


def ours_step(module, optimizer, batch, mark=lambda: None) -> torch.Tensor:
    """peftlab's step: the module's outputs and the causal_lm task loss, the module's backward hook (what
    Lightning calls), AdamW."""
    loss = torch.stack(list(module.task_losses(module(batch["inputs"], batch["task_mask"]), batch).values())).sum()
    mark()
    optimizer.zero_grad(set_to_none=True)
    module.backward(loss)
    optimizer.step()
    return loss.detach()


def hand_step(model, optimizer, batch, mark=lambda: None) -> torch.Tensor:
    """The hand-written step: logits, shifted masked cross-entropy, backward, AdamW."""
    logits = model(**batch["inputs"], use_cache=False).logits
    labels = batch["lm_labels"]
    labels = F.pad(labels[:, 1:], (0, 1), value=-100)  # shift the labels, not the logits, as transformers' ForCausalLMLoss does
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    mark()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def per_task_step(module, optimizer, batch, mark=lambda: None) -> torch.Tensor:
    """peftlab's gradient-method step as the module's manual path takes it: the task losses with the
    linear layers' calls recorded, ``per_task_backward`` (every row of the mixed batch has one task: one
    backward split by rows; the method's combination into ``.grad``), AdamW."""
    from peftlab.models import per_task_backward

    with module.linear_calls.recording(module, module.trainable_parameters()):
        losses = module.task_losses(module(batch["inputs"], batch["task_mask"]), batch)
    mark()
    optimizer.zero_grad(set_to_none=True)
    shared = module.body.shared_parameters()
    skip = {id(p) for p in shared}
    rest = [p for p in module.trainable_parameters() if id(p) not in skip]
    per_task_backward(losses, shared, rest, module.weighting, linear_calls=module.linear_calls.take(), task_mask=batch["task_mask"])
    optimizer.step()
    return torch.stack(list(losses.values())).sum().detach()


def torchjd_step(aggregator: str):
    """torchjd 0.18's step on the same module: ``autojac.backward`` of the task losses on the shared
    (LoRA) parameters (the tasks have no parameters of their own: the LM head is the decoder's, so
    ``mtl_backward``'s features split has nothing to separate), then ``jac_to_grad`` with the aggregator
    (its Gramian path), AdamW."""
    import torchjd.aggregation as agg
    from torchjd.autojac import backward, jac_to_grad

    combine = {"upgrad": agg.UPGrad, "mgda": agg.MGDA}[aggregator]()

    def step(module, optimizer, batch, mark=lambda: None) -> torch.Tensor:
        losses = module.task_losses(module(batch["inputs"], batch["task_mask"]), batch)
        mark()
        optimizer.zero_grad(set_to_none=True)
        shared = [p for p in module.body.shared_parameters() if p.requires_grad]
        backward(list(losses.values()), inputs=shared)
        jac_to_grad(shared, combine, optimize_gramian_computation=True)
        optimizer.step()
        return torch.stack(list(losses.values())).sum().detach()

    return step


def timed(step, model, optimizer, batch, steps: int) -> tuple[float, int, int]:
    """``(median seconds per step, peak step memory, activation memory kept for the backward)`` over ``steps`` steps."""
    times, peaks, above = [], [], []
    for _ in range(steps):
        held = held_bytes(model, optimizer)
        with PeakRSS() as rss:
            start = time.perf_counter()
            step(model, optimizer, batch, rss.mark)
            times.append(time.perf_counter() - start)
        peaks.append(held + rss.above_start)
        above.append(rss.kept_for_backward)
    return statistics.median(times), max(peaks), max(above)


def generation_pair(module, prompts, new_tokens: int) -> tuple[float, float, int]:
    """``(peftlab s, model.generate s, tokens)``: the same greedy tokens from both, checked."""
    decoder = module.body.backbone
    ids, mask = prompts["input_ids"], prompts["attention_mask"]
    start = time.perf_counter()
    ours = decoder.generate(ids, mask, new_tokens)
    t_ours = time.perf_counter() - start
    decoder.model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        plain = decoder.model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=decoder.model.config.eos_token_id)[:, ids.shape[1] :]
    t_plain = time.perf_counter() - start
    if not torch.equal(ours, plain[:, : ours.shape[1]]):
        raise SystemExit("error: peftlab's greedy tokens differ from model.generate's")
    return t_ours, t_plain, int(ours.numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each variant once per round, after one warm-up round)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    parser.add_argument("--layers", type=int, default=12, help="decoder layers (12: GPT-2 small, 124 M parameters)")
    parser.add_argument("--seq", type=int, default=256, help="tokens per row")
    parser.add_argument("--batch", type=int, default=4, help="rows per step")
    parser.add_argument("--new-tokens", type=int, default=32, help="generated tokens per prompt")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--no-gradient-methods", action="store_true", help="skip the UPGrad / MGDA arms (peftlab vs torchjd, 3 tasks on shared LoRA)")
    parser.add_argument("--write", action="store_true", help="replace this script's section of docs/benchmarks.md")
    args = parser.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:  # freed tensors must leave the RSS (see the docstring)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours, ours_opt = build_module(args.layers, [])
    hand = copy.deepcopy(ours.body.backbone.model)
    hand_opt = torch.optim.AdamW(hand.parameters(), lr=1e-4, weight_decay=0.01)
    lora, lora_opt = build_module(args.layers, ["strategy=lora_share", "strategy.sharing.adapter.lora_dropout=0.0"])
    ckpt, ckpt_opt = build_module(args.layers, ["model.gradient_checkpointing=true"])
    params = sum(p.numel() for p in ours.parameters())
    vocab = ours.body.backbone.model.config.vocab_size
    batch = batch_of(args.batch, args.seq, vocab, seed=1)
    prompts = batch_of(args.batch, args.seq - args.new_tokens, vocab, seed=2)["inputs"]
    first = (hand_step(hand, hand_opt, batch), ours_step(ours, ours_opt, batch))
    if not torch.allclose(*first, rtol=1e-4):
        raise SystemExit(f"error: the two steps' losses differ: {first[0].item()} vs {first[1].item()}")
    lora3, lora3_opt = build_module(args.layers, ["strategy=lora_share", "strategy.sharing.adapter.lora_dropout=0.0"], tasks=3)
    task_lora, task_lora_opt = build_module(args.layers, ["strategy=task_lora"], tasks=3)
    mixed = batch_of(args.batch, args.seq, vocab, seed=1, tasks=3)
    methods = {}
    if not args.no_gradient_methods:  # T = 3 on the shared-LoRA path: peftlab's methods vs torchjd's, same batch
        for name in ("upgrad", "mgda"):
            module, opt = build_module(args.layers, ["strategy=lora_share", "strategy.sharing.adapter.lora_dropout=0.0", f"strategy/weighting={name}"], tasks=3)
            methods[name] = (per_task_step, module, opt, mixed)
            module, opt = build_module(args.layers, ["strategy=lora_share", "strategy.sharing.adapter.lora_dropout=0.0"], tasks=3)
            methods[f"torchjd-{name}"] = (torchjd_step(name), module, opt, mixed)
    runs = {
        "ours": (ours_step, ours, ours_opt, batch),
        "hand": (hand_step, hand, hand_opt, batch),
        "lora": (ours_step, lora, lora_opt, batch),
        "ckpt": (ours_step, ckpt, ckpt_opt, batch),
        "lora3": (ours_step, lora3, lora3_opt, mixed),
        "task_lora": (ours_step, task_lora, task_lora_opt, mixed),
        **methods,
    }
    for step, model, opt, data in runs.values():  # warm-up: optimizer state allocated, kernels chosen
        step(model, opt, data)
    results = {name: [] for name in runs}
    gen = []
    for r in range(args.rounds):
        names = list(runs)
        for name in names[r % len(names) :] + names[: r % len(names)]:  # a different variant first each round
            step, model, opt, data = runs[name]
            results[name].append(timed(step, model, opt, data, args.steps))
        gen.append(generation_pair(ours, prompts, args.new_tokens))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {statistics.median(t for t, _, _ in v):.2f}s" for n, v in results.items()), flush=True)
    med = {n: (statistics.median(t for t, _, _ in v), max(p for _, p, _ in v), max(a for _, _, a in v)) for n, v in results.items()}
    t_ours, t_plain = statistics.median(g[0] for g in gen), statistics.median(g[1] for g in gen)
    tokens = gen[0][2]
    ratios = {
        "step": med["ours"][0] / med["hand"][0],
        "lora_time": med["lora"][0] / med["ours"][0],
        "lora_memory": med["lora"][1] / med["ours"][1],
        "ckpt_memory": med["ckpt"][2] / med["ours"][2],
        "ckpt_time": med["ckpt"][0] / med["ours"][0],
        "task_lora_time": med["task_lora"][0] / med["lora3"][0],
        "generation": (tokens / t_ours) / (tokens / t_plain),
    }
    for name in ("upgrad", "mgda"):
        if name in med:
            ratios[f"{name}_vs_torchjd"] = med[name][0] / min(med["torchjd-upgrad"][0], med["torchjd-mgda"][0])
    table = report(args, params, med, tokens, t_ours, t_plain, ratios)
    print(table)
    if args.write:
        from peftlab.reporting.benchmark_doc import write_benchmark_section

        write_benchmark_section("bench_causal_lm", table, ROOT / "docs" / "benchmarks.md")
        print("written: docs/benchmarks.md (section bench_causal_lm)")


def report(args, params: int, med: dict, tokens: int, t_ours: float, t_plain: float, ratios: dict) -> str:
    """The Markdown table of the measured times, memories and ratios against their goals."""
    mib = 2**20

    def verdict(key: str) -> str:
        op, goal = GOALS[key]
        met = ratios[key] <= goal if op == "<=" else ratios[key] >= goal
        return f"{ratios[key]:.2f}x (goal {op} {goal}: {'met' if met else 'not met'})"

    lines = [
        f"Causal LM on a random GPT-2-small-shaped decoder ({params / 1e6:.0f} M parameters, {args.layers} layers), CPU, {args.threads} threads,",
        f"batch {args.batch} x {args.seq} tokens, {args.rounds} interleaved rounds x {args.steps} step(s); `python scripts/bench_causal_lm.py --rounds {args.rounds} --steps {args.steps} --layers {args.layers}`",
        f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other jobs share the machine when it exceeds the threads used)",
        "",
        "| comparison | peftlab / baseline | measured |",
        "|---|---|---|",
        f"| causal-LM step vs hand-written loop | {verdict('step')} | {med['ours'][0]:.2f} s vs {med['hand'][0]:.2f} s |",
        f"| shared LoRA vs full: step time | {verdict('lora_time')} | {med['lora'][0]:.2f} s vs {med['ours'][0]:.2f} s |",
        f"| shared LoRA vs full: peak memory | {verdict('lora_memory')} | {med['lora'][1] / mib:.0f} MiB vs {med['ours'][1] / mib:.0f} MiB |",
        f"| gradient checkpointing: activation memory kept for backward | {verdict('ckpt_memory')} | {med['ckpt'][2] / mib:.0f} MiB vs {med['ours'][2] / mib:.0f} MiB |",
        f"| gradient checkpointing: step time | {verdict('ckpt_time')} | {med['ckpt'][0]:.2f} s vs {med['ours'][0]:.2f} s |",
        f"| task_lora (3 tasks, mixed batch) vs shared LoRA: step time | {verdict('task_lora_time')} | {med['task_lora'][0]:.2f} s vs {med['lora3'][0]:.2f} s |",
        f"| greedy generation vs `model.generate`: tokens/s | {verdict('generation')} | {tokens / t_ours:.1f} vs {tokens / t_plain:.1f} tokens/s ({tokens} tokens) |",
    ]
    if "upgrad" in med:
        best = min(("torchjd-upgrad", "torchjd-mgda"), key=lambda n: med[n][0])
        for name in ("upgrad", "mgda"):
            lines.append(
                f"| {name} (3 tasks, shared LoRA) vs torchjd's best ({best}): step time | {verdict(name + '_vs_torchjd')} | {med[name][0]:.2f} s vs {med[best][0]:.2f} s "
                f"({med[name][0] / med['lora3'][0]:.2f}x and {med[best][0] / med['lora3'][0]:.2f}x equal weighting's {med['lora3'][0]:.2f} s) |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
