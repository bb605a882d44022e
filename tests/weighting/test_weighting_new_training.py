"""The methods of issue 24 in real training on the digits example (slow: ~10 s a run on 2 CPUs)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import metrics_files, read_json, run_cli
from peftlab.train import train

NEW = [
    "upgrad",
    "dualproj",
    "aligned_mtl",
    "config_grad",
    "fairgrad",
    "gradvac",
    "graddrop",
    "gls",
    "db_mtl",
    "pcd",
    "krum",
    "trimmed_mean",
    "moco",
    "nash_mtl",
    "excess_mtl",
    "cr_mogm",
    "modo",
    "sdmgrad",
]


@pytest.mark.slow
@pytest.mark.parametrize("method", NEW)
def test_new_method_trains_and_reports_alpha(make_cfg, method):
    metrics = train(make_cfg(f"strategy/weighting={method}", "trainer.max_epochs=2"))
    assert metrics["status"] == "completed" and metrics["score"] > 0.6  # chance: digit 0.1, binary 0.5
    assert set(metrics["alpha"]) == {"digit", "parity", "high"}
    assert all(math.isfinite(a) for a in metrics["alpha"].values())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["upgrad", "dualproj", "aligned_mtl", "config_grad", "fairgrad", "gradvac", "graddrop", "pcd", "krum", "trimmed_mean", "nash_mtl", "cr_mogm", "modo", "sdmgrad"])
def test_new_gradient_method_in_representation_mode(make_cfg, method):
    metrics = train(make_cfg(f"strategy/weighting={method}", "strategy.weighting.mode=representation", "trainer.max_epochs=2"))
    assert metrics["status"] == "completed" and metrics["score"] > 0.6


@pytest.mark.slow
def test_gradvac_targets_are_in_the_checkpoint(make_cfg):
    metrics = train(make_cfg("strategy/weighting=gradvac", "trainer.max_epochs=1"))
    state = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    targets = state["weighting.targets"]
    assert targets.shape == (3, 3) and targets.abs().sum() > 0 and int(state["weighting.steps"]) == 20


@pytest.mark.slow
def test_stch_reaches_its_smooth_tchebycheff_phase(make_cfg):
    """Warm-up 0: epoch 0 fixes the nadir, epoch 1 trains on the smooth Tchebycheff objective."""
    metrics = train(make_cfg("strategy/weighting=stch", "strategy.weighting.warmup_epochs=0", "trainer.max_epochs=2"))
    assert metrics["status"] == "completed" and metrics["score"] > 0.6
    state = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    assert int(state["weighting.epochs"]) == 2 and bool((state["weighting.nadir"] > 0).all())
    assert all(math.isfinite(a) and a > 0 for a in metrics["alpha"].values())


@pytest.mark.slow
def test_db_mtl_moving_average_is_in_the_checkpoint(make_cfg):
    metrics = train(make_cfg("strategy/weighting=db_mtl", "trainer.max_epochs=1"))
    state = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    assert state["weighting.grad_buffer"].shape[0] == 3 and state["weighting.grad_buffer"].abs().sum() > 0
    assert int(state["weighting.updates"]) == 20


@pytest.mark.slow
def test_upgrad_from_the_command_line(tmp_path):
    result = run_cli("train.py", "strategy/weighting=upgrad", "trainer.max_epochs=1", "callbacks=none", "trainer.enable_progress_bar=false", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = [read_json(p) for p in metrics_files(tmp_path)]
    assert metrics["status"] == "completed" and metrics["config"]["strategy"]["weighting"]["_target_"] == "peftlab.weighting.UPGradWeighting"


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [("db_mtl", ["trainer.max_epochs=1"]), ("stch", ["strategy.weighting.warmup_epochs=0", "trainer.max_epochs=2"])])
def test_stateful_new_method_under_bf16_per_task_clipping_and_accumulation(make_cfg, method, extra):
    """DB-MTL's moving average (MoCo's and PCD's take the same path) and STCH's nadir and smooth
    phase under bf16 autocast, clipped rows and 2 micro-batches a step (bf16 on CPU is slow: kept short)."""
    overrides = ["trainer.precision=bf16-mixed", "strategy/clipping=per_task", "trainer.accumulate_grad_batches=2", *extra]
    metrics = train(make_cfg(f"strategy/weighting={method}", *overrides))
    assert metrics["status"] == "completed" and all(math.isfinite(a) for a in metrics["alpha"].values())
    state = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    if method == "db_mtl":  # one update a micro-batch: 20 micro-batches in the epoch
        assert int(state["weighting.updates"]) == 20 and bool(torch.isfinite(state["weighting.grad_buffer"]).all())
    else:
        assert int(state["weighting.epochs"]) == 2 and bool((state["weighting.nadir"] > 0).all())
