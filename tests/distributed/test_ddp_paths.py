"""DDP equivalence for the paths test_ddp_weighting.py does not cover: 2 CPU processes with batch
B/2 each end with the same parameters (and pruning masks) as 1 process with batch B.

Paths: per-task clipping (per-task-gradient path under a loss-based weighting), representation
mode (Gram matrix of the shared features summed over ranks), mixed-task batches (every batch one
task, the same task on every rank), pruning (magnitude: masks from synchronised weights; movement:
scores from DDP-averaged gradients) — masks identical across ranks and equal to the single-process
masks. The two ranks are real processes (gloo) started the way test_ddp_weighting.py does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]  # tests/: conftest and the helpers
sys.path.insert(0, str(HERE))

from test_ddp_weighting import COMMON, GLOBAL_BATCH, assert_same, free_port  # noqa: E402

PRUNE = ["strategy=prune_share", "strategy/weighting=equal", "strategy.pruning.start_step=0", "strategy.pruning.end_step=4", "strategy.pruning.every_n_steps=2", "strategy.pruning.final_sparsity=0.6"]
# Mixed-task batches at lr 0.05 rather than COMMON's 0.2: with one task per step at lr 0.2 the
# float rounding of DDP's bucketed gradient average (1e-7 after one step) grows to 2e-5 in six
# steps, measured; at 0.05 the difference stays at 1.5e-7, so 1e-5 still catches a wrong sample.
MIXED = ["data=digits_mixed", "model.optimizer.lr=0.05"]
CASES = {
    "per_task_clipping": ["strategy/weighting=uncertainty", "strategy/clipping=per_task", "strategy.clipping.max_norm=0.5"],
    "representation": ["strategy/weighting=mgda", "strategy.weighting.mode=representation"],
    "mixed_equal": MIXED + ["strategy/weighting=equal"],
    "mixed_pcgrad": MIXED + ["strategy/weighting=pcgrad"],
    "prune_magnitude": PRUNE + ["strategy/pruning=magnitude"],
    "prune_movement": PRUNE + ["strategy/pruning=movement"],
}


def fit(case: str, devices: int, out: Path) -> dict[str, torch.Tensor]:
    """Train ``case`` for 6 optimizer steps on ``devices`` CPU processes (with trainer=ddp_sim's DDP
    strategy, as users run it); return the final state dict (masks included)."""
    import lightning as L

    from conftest import compose_config
    from peftlab.builders import build_datamodule, build_model, build_strategy_callbacks

    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(["trainer=ddp_sim"] + COMMON + CASES[case] + [f"data.batch_size={GLOBAL_BATCH // devices}"], out)
    L.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=cfg.trainer.strategy if devices > 1 else "auto",
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=build_strategy_callbacks(cfg),
    )
    trainer.fit(model, datamodule=datamodule)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor) and v.dtype.is_floating_point}


@pytest.mark.slow
def test_two_processes_with_half_batches_equal_one_process_on_every_path():
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2", "NODE_RANK": "0", "PL_DISABLE_FORK": "1"}
        procs = [
            subprocess.Popen([sys.executable, __file__, str(out)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)
        ]
        logs = [p.communicate(timeout=600)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
        for case in CASES:
            single = fit(case, 1, out / f"single_{case}")
            rank0 = torch.load(out / f"{case}.rank0.pt", weights_only=True)
            rank1 = torch.load(out / f"{case}.rank1.pt", weights_only=True)
            assert_same(rank0, rank1, f"{case} rank 0 vs rank 1")
            assert_same(rank0, single, f"{case} 2×B/2 vs 1×B")
            masks = [k for k in single if k.endswith("_mask")]
            if case.startswith("prune"):
                assert len(masks) >= 2, case
                for k in masks:  # masks are 0/1: equal means entry for entry
                    assert torch.equal(rank0[k], rank1[k]) and torch.equal(rank0[k], single[k]), f"{case}: {k}"
                zeros = sum(int((single[k] == 0).sum()) for k in masks) / sum(single[k].numel() for k in masks)
                assert zeros == pytest.approx(0.6, abs=1e-3), case
            else:
                assert not masks


if __name__ == "__main__":  # one DDP rank
    out = Path(sys.argv[1])
    for case in CASES:
        state = fit(case, 2, out / f"rank{os.environ['RANK']}_{case}")
        torch.save(state, out / f"{case}.rank{os.environ['RANK']}.pt")
