"""Framework overhead: peftlab's training step vs a hand-written PyTorch loop, side by side.

Both train the same digits MLP (64-256-256, 3 heads, batch 64) on the same batches with AdamW,
equal task weights and global-norm clipping at 1.0. Epochs of each are interleaved and the
median time per optimizer step is compared, as in docs/peer-figures.md (Lightning's own
overhead there: 1.31x automatic, 1.23x manual optimisation).

    python scripts/bench_overhead.py [--epochs 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from peftlab.builders import build_datamodule, build_model
from peftlab.config.compose import compose_train_config


class EpochTimer(L.Callback):
    """Wall time per training epoch and steps in it."""

    def __init__(self):
        self.per_step_ms: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.start, self.steps0 = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module):
        steps = trainer.global_step - self.steps0
        self.per_step_ms.append((time.perf_counter() - self.start) * 1000 / steps)


def raw_epoch(model, loader, optimizer) -> float:
    """One epoch of the hand-written loop; ms per step."""
    model.train()
    start, steps = time.perf_counter(), 0
    for batch in loader:
        losses = model.task_losses(model(batch["inputs"]), batch)
        loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps += 1
    return (time.perf_counter() - start) * 1000 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per side (interleaved in blocks of 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = compose_train_config(["strategy/weighting=equal", "strategy/clipping=norm", "model.backbone.dropout=0.0", "model.scheduler=null"], output_dir="/tmp/peftlab-bench/run")
    dm = build_datamodule(cfg)
    raw_model = build_model(cfg)
    raw_opt = torch.optim.AdamW(raw_model.parameters(), lr=2e-3, weight_decay=1e-4)
    loader = dm.train_dataloader()
    pl_model = build_model(cfg)
    timer = EpochTimer()
    raw_ms: list[float] = []
    block = 5
    for _ in range(max(1, args.epochs // block)):
        raw_ms += [raw_epoch(raw_model, loader, raw_opt) for _ in range(block)]
        # a fresh Trainer per block: fit start-up (25-40 ms) falls outside the timed epochs
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=block,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            use_distributed_sampler=False,
            callbacks=[timer],
            log_every_n_steps=cfg.trainer.log_every_n_steps,
        )
        trainer.fit(pl_model, datamodule=dm)
    raw, ours = statistics.median(raw_ms[1:]), statistics.median(timer.per_step_ms[1:])
    print(f"hand-written loop : {raw:.3f} ms/step (median of {len(raw_ms) - 1} epochs)")
    print(f"peftlab (Lightning): {ours:.3f} ms/step (median of {len(timer.per_step_ms) - 1} epochs)")
    print(f"overhead ratio     : {ours / raw:.2f}x   (plain Lightning, automatic optimisation: 1.31x in docs/peer-figures.md)")


if __name__ == "__main__":
    main()
