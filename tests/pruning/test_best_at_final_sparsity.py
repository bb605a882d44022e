"""The "best" checkpoint of a pruning run is chosen only among checkpoints at the final sparsity
(EligibleModelCheckpoint, through ModelCheckpoint's public check_monitor_top_k)."""

from pathlib import Path

import pytest
import torch

from conftest import run_cli
from peftlab.train import train
from pruning_helpers import one_thread  # noqa: F401

# 3 epochs x 20 steps; pruning reaches 50 % at step 40 (end of epoch 2). Monitoring val/score with
# mode=min makes the least trained checkpoint (epoch 1, step 20, not yet at final sparsity) the
# "best" one unless the guard works.
RUN = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.max_epochs=3",
    "strategy=prune_share",
    "strategy.pruning.start_step=0",
    "strategy.pruning.end_step=40",
    "strategy.pruning.every_n_steps=10",
    "callbacks.model_checkpoint.mode=min",
]


def stored_sparsity(path: str) -> tuple[int, float]:
    """(global_step, zeros / entries of the masked weights) of a checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    sd = ckpt["state_dict"]
    ws = [sd[k[: -len("_mask")]] for k in sd if k.endswith("weight_mask")]
    return ckpt["global_step"], sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


@pytest.mark.slow
def test_best_checkpoint_waits_for_the_final_sparsity(make_cfg):
    guarded = train(make_cfg(*RUN, fast=False))
    step, sparsity = stored_sparsity(guarded["ckpt_path"])
    assert Path(guarded["ckpt_path"]).name.startswith("best-epoch")
    assert step in (40, 60) and sparsity == pytest.approx(0.5, abs=1e-3)
    assert guarded["params"]["sparsity"] == pytest.approx(sparsity, abs=1e-6)

    unguarded = train(make_cfg(*RUN, "strategy.pruning.best_at_final_sparsity=false", fast=False))
    step, sparsity = stored_sparsity(unguarded["ckpt_path"])
    assert step == 20 and sparsity < 0.5  # what the guard prevents: a checkpoint before the final sparsity


@pytest.mark.slow
def test_a_plain_model_checkpoint_is_refused_in_one_line(tmp_path):
    res = run_cli("train.py", *RUN, "callbacks.model_checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint", log_dir=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: strategy.pruning.best_at_final_sparsity: ") and "EligibleModelCheckpoint" in last
    assert "Traceback" not in res.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
