"""Where one BERT-base per-task step spends its time: peftlab's phases beside torchjd 0.18's and equal weighting's.

The same random BERT-base encoder (``transformers.BertConfig()``), batch 8 × seq 128, three linear
heads on the [CLS] features (cross-entropy), 2 threads. Per round and arm, the CPU time of this
process (all threads, system time included) of each phase; the arms alternate within a round, and
round 1 is a warm-up (first-touch page faults of the T × P buffers) that is printed but not summed.
Each arm's peak resident memory (``bench_weighting.PeakRSS``) is printed too, over equal's, in T × P float32
matrices of the shared parameters (the lowest peak over the rounds after the warm-up).

* ``equal``: forward, one backward of the summed loss.
* ``peftlab``: forward, the batched backward (:meth:`TaskJacobian.of`), the Gram matrix, the
  non-finite check (entry by entry, as before; and from the Gram's diagonal, as now), the combination
  into ``.grad``.
* ``peftlab-rows``: the same with the embedding tables differentiated through their lookups and kept as the
  rows the batch used (:mod:`peftlab.models.embedding_rows`; what the module does in ``params`` mode).
* ``loop``: forward, T plain ``autograd.grad`` calls (what the batched pass replaces).
* ``torchjd``: forward, ``mtl_backward`` on the shared features, ``jac_to_grad`` (MGDA, Gramian path).

    python scripts/profile_per_task_backward.py --rounds 2
    python scripts/profile_per_task_backward.py --rounds 3 --threads 1 --arms equal,peftlab,peftlab-rows,torchjd
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from bench_weighting import PeakRSS
from peftlab.models.embedding_rows import EmbeddingRecorder, row_plan
from peftlab.models.task_jacobian import TaskJacobian
from weighting_arms import BertBackbone


class Phases:
    """CPU seconds per named phase (``with phases("name"): ...``)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        self._name = name
        return self

    def __enter__(self):
        self._start = time.process_time()

    def __exit__(self, *exc):
        self.seconds[self._name] = time.process_time() - self._start


class Setup:
    """The encoder, heads, one batch and the parameter lists every arm shares."""

    def __init__(self, tasks: int = 3):
        torch.manual_seed(0)
        self.encoder = BertBackbone()
        self.heads = torch.nn.ModuleList([torch.nn.Linear(self.encoder.out_dim, 2) for _ in range(tasks)])
        self.x = torch.randint(0, 30522, (8, 128))
        self.y = torch.randint(0, 2, (8,))
        self.shared = list(self.encoder.parameters())
        self.head_params = list(self.heads.parameters())

    def forward(self):
        """Shared features and one loss per task."""
        features = self.encoder(self.x)
        return features, [torch.nn.functional.cross_entropy(h(features), self.y) for h in self.heads]

    def clear(self):
        """Drop every ``.grad`` (and torchjd's ``.jac``) between arms."""
        for p in self.shared + self.head_params:
            p.grad = None


def equal(s: Setup, ph: Phases) -> None:
    """Equal weighting: one backward of the summed losses."""
    with ph("forward"):
        _, losses = s.forward()
    with ph("backward (sum of losses)"):
        torch.stack(losses).sum().backward()


def peftlab(s: Setup, ph: Phases, by_rows: bool = False) -> None:
    """peftlab's Gram-only path, phase by phase (MGDA-like: the coefficients are fixed here, the solve is tiny);
    ``by_rows``: embedding tables by the rows the batch used."""
    recorder = EmbeddingRecorder()
    with ph("forward"), recorder.recording(s.encoder, s.shared if by_rows else []):
        _, losses = s.forward()
    targets = s.shared + s.head_params
    with ph("batched backward (TaskJacobian.of)"):
        jac = TaskJacobian.of(losses, targets, rows=row_plan(recorder.take(), losses, s.shared))
    with ph("Gram (block by block)"):
        gram = jac.gram(len(s.shared))
    if not by_rows:
        with ph("non-finite check, entry by entry (before)"):
            jac.finite_rows()
    with ph("non-finite check from the Gram diagonal (now)"):
        jac.finite_rows(gram, len(s.shared))
    with ph("combination into .grad"):
        jac.combine_into_grads(s.shared, torch.full((len(losses),), 1.0 / len(losses)), 0, 1.0)
        jac.combine_into_grads(s.head_params, None, len(s.shared), 1.0)


def loop(s: Setup, ph: Phases) -> None:
    """The alternative to the batched pass: T plain backward passes (``retain_graph`` until the last)."""
    with ph("forward"):
        _, losses = s.forward()
    with ph("T backward passes (loop of autograd.grad)"):
        for k, loss in enumerate(losses):
            torch.autograd.grad(loss, s.shared + s.head_params, retain_graph=k < len(losses) - 1, allow_unused=True)


def torchjd(s: Setup, ph: Phases) -> None:
    """torchjd 0.18: ``mtl_backward`` on the shared features, then ``jac_to_grad`` with MGDA's Gramian path."""
    from torchjd.aggregation import MGDA
    from torchjd.autojac import jac_to_grad, mtl_backward

    with ph("forward"):
        features, losses = s.forward()
    with ph("mtl_backward"):
        mtl_backward(losses, features=features, tasks_params=[list(h.parameters()) for h in s.heads], shared_params=s.shared)
    with ph("jac_to_grad (MGDA, Gramian path)"):
        jac_to_grad(s.shared, MGDA(), optimize_gramian_computation=True)


def main() -> None:
    """Run the rounds and print each arm's phases (median over the rounds after the first)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="rounds of all arms; the first is a warm-up")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--arms", default="equal,peftlab,peftlab-rows,loop,torchjd", help="comma-separated arms")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    setup = Setup()
    every = {
        "equal": equal,
        "peftlab": peftlab,
        "peftlab-rows": lambda s, ph: peftlab(s, ph, by_rows=True),
        "loop": loop,
        "torchjd": torchjd,
    }
    arms = {a: every[a] for a in args.arms.split(",")}
    kept: dict[str, dict[str, list[float]]] = {a: defaultdict(list) for a in arms}
    peaks: dict[str, list[int]] = {a: [] for a in arms}
    for r in range(args.rounds):
        for name, arm in arms.items():
            phases = Phases()
            with PeakRSS() as mem:
                arm(setup, phases)
            setup.clear()
            if r > 0 or args.rounds == 1:
                peaks[name].append(mem.peak)
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.seconds.items()), flush=True)
            if r > 0 or args.rounds == 1:
                for k, v in phases.seconds.items():
                    kept[name][k].append(v)
    print(f"\nCPU seconds per phase, median of {max(args.rounds - 1, 1)} round(s) after the warm-up:")
    matrix = len(setup.heads) * sum(p.numel() for p in setup.shared) * 4  # one T × P float32 matrix, bytes
    for name, phases in kept.items():
        over = (min(peaks[name]) - min(peaks["equal"])) / matrix if "equal" in peaks else float("nan")
        total = sum(statistics.median(vs) for k, vs in phases.items() if "(before)" not in k)  # what a step runs now
        print(f"{name}: total {total:.2f} s, peak RSS over equal's {over:.2f} T × P")
        for k, vs in phases.items():
            print(f"  {k}: {statistics.median(vs):.2f}")


if __name__ == "__main__":
    main()
