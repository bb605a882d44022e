"""Calibration + pruning time of magnitude, Wanda and SparseGPT on a MiniLM-shaped encoder (CPU).

    python scripts/bench_calibrated_pruning.py [--batches 16] [--batch-size 32] [--length 128] [--threads 2]

A randomly initialised BERT with all-MiniLM-L6-v2's shape (6 layers, hidden 384, 12 heads, FFN
1536; no download) under a peftlab MultiTaskModule, every encoder Linear plus the pooler pruned
to 50 % unstructured and to 2:4, from ``--batches`` random token batches. Times only: random
weights say nothing about accuracy (for that, ``strategy=oneshot_prune`` on a trained checkpoint).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from peftlab.callbacks.calibration_batches import EvalMode  # noqa: E402
from peftlab.callbacks.pruning import PruningCallback  # noqa: E402
from peftlab.pruning.criteria import Magnitude, SparseGPT, Wanda  # noqa: E402
from peftlab.sharing import FullSharing  # noqa: E402


def minilm_shaped(path: Path) -> Path:
    """A random BERT with MiniLM-L6's shape, written with save_pretrained."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)).save_pretrained(path)
    return path


def batches(n: int, size: int, length: int) -> list[dict]:
    """Random full-length token batches in peftlab's batch contract."""
    gen = torch.Generator().manual_seed(0)
    return [{"inputs": {"input_ids": torch.randint(1, 30522, (size, length), generator=gen), "attention_mask": torch.ones(size, length, dtype=torch.long)}} for _ in range(n)]


def main() -> None:
    """Print one line per criterion and pattern: seconds for calibration + pruning."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from hf_helpers import hf_module

    data = batches(args.batches, args.batch_size, args.length)
    with tempfile.TemporaryDirectory() as tmp:
        path = minilm_shaped(Path(tmp))
        print(f"MiniLM-shaped encoder, {args.batches} batches x {args.batch_size} x {args.length} tokens, {args.threads} threads")
        for name, make in [("magnitude", Magnitude), ("wanda", Wanda), ("sparsegpt", SparseGPT)]:
            for n_m in (None, [2, 4]):
                module = hf_module(path, FullSharing())
                cb = PruningCallback(criterion=make(n_m=n_m), schedule="one_shot", final_sparsity=0.5)
                cb.attach(module)
                start = time.perf_counter()
                cb.calibrate(data, module)
                with EvalMode(module):
                    cb.update_masks(0.5)
                seconds = time.perf_counter() - start
                print(f"{name:10s} {'2:4' if n_m else '50 %':5s} {seconds:7.2f} s  sparsity {cb.measured_sparsity():.4f}")


if __name__ == "__main__":
    main()
