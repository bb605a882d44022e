"""strategy=prune_recover: dense weights in, one-shot prune, shared-LoRA recovery with masks held, exact resume, export merged and re-masked."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, read_json
from peftlab.export import export_checkpoint, load_exported
from peftlab.recover import prune_recover
from pruning_helpers import checkpoint_masks, one_thread  # noqa: F401

pytestmark = pytest.mark.slow

QUIET = ["callbacks=model_checkpoint", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=2"]


def _state(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def test_recovery_holds_the_masks_and_exports_at_the_asked_sparsity(make_cfg, tmp_path):
    metrics = prune_recover(make_cfg(*QUIET, "strategy=prune_recover", "strategy/pruning=sparsegpt", fast=False))  # trains the dense model first
    dense = read_json(Path(metrics["run_dir"]) / "dense" / "metrics.json")
    assert dense["status"] == "completed" and "base_layer" not in str(_state(dense["ckpt_path"]).keys())
    assert metrics["status"] == "completed" and metrics["pruning"]["criterion"] == "sparsegpt"
    assert metrics["params"]["sparsity"] == pytest.approx(0.5) and metrics["score"] > 0.5
    sd = _state(metrics["ckpt_path"])
    masks = checkpoint_masks(metrics["ckpt_path"])
    assert masks and all(".base_layer." in k for k in masks)  # LoRA wraps the pruned layers
    for name, mask in masks.items():
        weight = sd[name[: -len("_mask")]]
        assert torch.equal(weight * mask, weight) and float((mask == 0).float().mean()) == pytest.approx(0.5)
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in sd.items())  # the adapter trained

    out = export_checkpoint(metrics["ckpt_path"], str(tmp_path / "model.pt"))
    assert out["merged_lora"] > 0 and out["max_abs_diff"] < 1e-5  # outputs equal to the masked model with merged adapters
    exported = load_exported(out["out"])
    for name, mask in masks.items():  # merged weights: exactly the pruned entries zero
        merged = exported.get_parameter(name[: -len("_mask")].replace(".base_layer", ""))
        assert torch.equal(merged != 0, mask.bool() & (merged != 0)) and float((merged == 0).float().mean()) >= 0.5


def test_killed_mid_recovery_resumes_to_the_same_weights(make_cfg, tmp_path):
    dense = prune_recover(make_cfg(*QUIET, "strategy=prune_recover", "trainer.max_epochs=1", fast=False))
    source = read_json(Path(dense["run_dir"]) / "dense" / "metrics.json")["ckpt_path"]
    overrides = [
        "callbacks=none",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_epochs=2",
        "++trainer.limit_train_batches=4",
        "callbacks.step_checkpoint.every_n_train_steps=2",
        "strategy=prune_recover",
        f"strategy.from_ckpt={source}",
    ]
    full = prune_recover(make_cfg(*overrides, fast=False))
    run_dir = tmp_path / "killed"
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}", "+callbacks.kill._target_=kill_helpers.KillAtStep", "+callbacks.kill.step=6"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 6  # mid-epoch 2, after the pruning
    resumed = prune_recover(make_cfg(*overrides, f"ckpt_path={last}", fast=False))
    a, b = _state(Path(full["run_dir"]) / "checkpoints" / "last.ckpt"), _state(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and any(k.endswith("_mask") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["pruning"]["history"] == full["pruning"]["history"] == [[0, 0.5]]
