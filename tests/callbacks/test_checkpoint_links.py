"""Best = last: one copy of the checkpoint's bytes on disk, and both names still test, predict and resume."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import compose_config
from peftlab.callbacks.checkpoint_links import share_if_same_step
from peftlab.evaluate import evaluate
from peftlab.train import train

QUICK = ["++trainer.limit_train_batches=3", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks=none"]


@pytest.mark.slow
def test_best_equal_to_last_is_stored_once_and_both_names_work(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=1", "++trainer.limit_train_batches=3"))  # one epoch: the best is the last
    ckpts = sorted((tmp_path / "run0").rglob("*.ckpt"))
    best, last = [p for p in ckpts if p.name.startswith("best")][0], [p for p in ckpts if p.name == "last.ckpt"][0]
    assert metrics["ckpt_path"] == str(best)
    assert os.path.samefile(best, last)  # one inode ...
    assert sum(p.stat().st_size for p in {os.stat(p).st_ino: p for p in ckpts}.values()) == last.stat().st_size  # ... one copy of the bytes
    for name in (best, last):
        tested = evaluate(compose_config([f"ckpt_path={name}", "++trainer.enable_progress_bar=false"], tmp_path / f"eval_{name.stem}", config_name="eval"))
        assert tested["tasks"] == metrics["tasks"]
    # resuming from the best name trains on; the new last.ckpt is a new file, the old best keeps its bytes
    size = best.stat().st_size
    resumed = train(compose_config([*QUICK, "trainer.max_epochs=2", f"ckpt_path={best}"], tmp_path / "resumed"))
    assert resumed["status"] == "completed" and best.stat().st_size == size


def test_different_steps_keep_both_files(tmp_path):
    import torch

    a, b = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    torch.save({"global_step": 10, "epoch": 0, "state_dict": {}}, a)
    torch.save({"global_step": 20, "epoch": 1, "state_dict": {}}, b)
    assert not share_if_same_step(a, b) and not os.path.samefile(a, b)
    shutil.copy(b, a)  # same step now
    assert share_if_same_step(a, b) and os.path.samefile(a, b)
    assert not share_if_same_step(a, tmp_path / "missing.ckpt")
