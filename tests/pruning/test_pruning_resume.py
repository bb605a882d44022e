"""Kill-and-resume: a run interrupted and resumed from last.ckpt ends with exactly the same masks."""

from pathlib import Path

import pytest
import torch

from peftlab.train import train
from pruning_helpers import Crash, checkpoint_masks, one_thread  # noqa: F401

BASE = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "strategy=prune_share",
    "trainer.max_epochs=4",
    "strategy.pruning.start_step=10",
    "strategy.pruning.end_step=70",
    "strategy.pruning.every_n_steps=10",
]


@pytest.mark.parametrize("criterion", ["movement", "magnitude", pytest.param("sparsegpt", marks=pytest.mark.slow)])  # sparsegpt: calibration at every update, weights updated
def test_kill_and_resume_gives_identical_masks(make_cfg, criterion):
    pick = [f"strategy/pruning={criterion}"]
    full = train(make_cfg(*BASE, *pick, fast=False))
    crashing = make_cfg(*BASE, *pick, "+callbacks.crash._target_=pruning_helpers.CrashAtEpoch", "+callbacks.crash.epoch=2", fast=False)
    with pytest.raises(Crash):
        train(crashing)
    last = Path(crashing.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 40
    resumed = train(make_cfg(*BASE, *pick, f"ckpt_path={last}", fast=False))
    a = checkpoint_masks(Path(full["run_dir"]) / "checkpoints" / "last.ckpt")
    b = checkpoint_masks(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and len(a) == 2
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["pruning"]["history"] == full["pruning"]["history"]
    assert resumed["params"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
