"""What a run prints: whole paths, one-line errors for mismatched checkpoints, no framework noise."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from torch import nn

from conftest import ROOT
from peftlab.checkpoints.mismatch import checkpoint_mismatch
from peftlab.reporting.summary import print_summary
from peftlab.runs.library_warnings import DropNoise


def test_summary_prints_checkpoint_and_run_dir_whole(capsys):
    run_dir = "/a/very/long/path/" + "x" * 150 + "/logs/train/runs/2026-01-01_00-00-00_abcdef12"
    ckpt = run_dir + "/checkpoints/best-epoch029.ckpt"
    print_summary({"score": 0.9, "tasks": {"digit": {"acc": 0.9}}, "ckpt_path": ckpt, "run_dir": run_dir})
    lines = capsys.readouterr().out.splitlines()
    assert f"checkpoint: {ckpt}" in lines and f"run dir:    {run_dir}" in lines


def test_resuming_another_model_names_the_differing_keys():
    trained, now = nn.Sequential(nn.Linear(2, 2)), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(RuntimeError) as info:
        now.load_state_dict(trained.state_dict())  # the error PyTorch (and so Lightning) raises
    saved = {"strategy": {"weighting": {"_target_": "peftlab.weighting.FixedWeighting", "alpha": None}}, "model": {"scheduler": {"T_max": 1}}}
    current = {"strategy": {"weighting": {"_target_": "peftlab.weighting.UncertaintyWeighting", "init_log_var": 0.0}}, "model": {"scheduler": {"T_max": 2}}}
    err = checkpoint_mismatch(info.value, "run/checkpoints/last.ckpt", saved, current)
    assert err.key == "ckpt_path" and "\n" not in str(err)
    assert "missing 1.weight, 1.bias" in str(err)
    assert "strategy.weighting._target_: checkpoint peftlab.weighting.FixedWeighting, now peftlab.weighting.UncertaintyWeighting" in str(err)
    assert "T_max" not in str(err)  # the class that differs explains it; derived values are left out
    assert checkpoint_mismatch(RuntimeError("CUDA out of memory"), "x", saved, current) is None


def test_noise_filter_drops_tips_and_banners_only():
    keep = DropNoise()
    record = lambda msg: logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, __file__, 1, msg, None, None)  # noqa: E731
    assert not keep.filter(record("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"))
    assert not keep.filter(record("GPU available: False, used: False"))
    assert keep.filter(record("`Trainer.fit` stopped: `max_epochs=1` reached."))
    assert keep.filter(record("Epoch 3: val/score improved"))


@pytest.mark.slow
def test_a_run_prints_no_framework_advertising(tmp_path):
    env = {**os.environ, "PEFTLAB_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    cmd = [sys.executable, str(ROOT / "train.py"), "debug=fast_dev_run", "trainer.enable_progress_bar=false", "callbacks.progress_bar=null"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    for noise in ("💡 Tip", "litlogger", "GPU available:", "TPU available:", "isinstance(treespec, LeafSpec)"):
        assert noise not in out
    assert "peftlab run — score" in out and "run dir:    " + str(tmp_path / "logs" / "debug" / "runs") in out
