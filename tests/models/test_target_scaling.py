"""Regression heads learn standardised targets; predictions and metrics stay on the labels' scale."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from peftlab.builders import build_model
from peftlab.models import MLPBackbone, MultiTaskModule
from peftlab.tasks import TaskSpec
from peftlab.train import train

LOCAL = ["data=local_file", "data.source.features=[f0,f1]", "data.input_shape=[2]"]


def write_rows(path, n: int = 400, offset: float = 100.0, scale: float = 5.0) -> None:
    """Two features; a class (f0 > 0) and a regression target offset + scale * (f0 + 0.5 f1) + noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y_b = offset + scale * (x[:, 0] + 0.5 * x[:, 1]) + rng.normal(scale=0.3 * scale, size=n)
    lines = ["f0,f1,y_a,y_b"] + [f"{a:.5f},{b:.5f},{int(a > 0)},{c:.5f}" for (a, b), c in zip(x, y_b)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_short_run_on_labels_far_from_zero_scores_r2_above_zero(make_cfg, tmp_path):
    # before: the head started at 0 against labels near 100, R² far below 0 after a short run
    write_rows(tmp_path / "rows.csv")
    cfg = make_cfg(*LOCAL, f"data.source.path={tmp_path / 'rows.csv'}", "trainer.max_epochs=3", "callbacks=default", "callbacks.progress_bar=null")
    metrics = train(cfg)
    r2 = metrics["tasks"]["b"]["r2"]
    assert r2 >= 0.5, metrics["tasks"]["b"]
    ckpt = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)
    mean, std = ckpt["state_dict"]["heads.target_scaling.mean"], ckpt["state_dict"]["heads.target_scaling.std"]
    assert 98 < float(mean[0]) < 102 and 4 < float(std[0]) < 9  # the training split's statistics, kept in the checkpoint
    # the model built from the config alone and loaded from the checkpoint predicts exactly what was trained
    fresh = build_model(cfg)
    assert float(fresh.heads.target_scaling.mean[0]) == 0.0  # built from the config alone: identity until fitted or loaded
    fresh.load_state_dict(ckpt["state_dict"])
    assert torch.equal(fresh.heads.target_scaling.mean, mean) and bool(fresh.heads.target_scaling.fitted.all())


TASKS = [TaskSpec(name="a", label="a", num_classes=2), TaskSpec(name="b", label="b", num_classes=0)]


def small_module() -> MultiTaskModule:
    torch.manual_seed(0)
    return MultiTaskModule(functools.partial(MLPBackbone, input_shape=[2], hidden_dims=[8]), TASKS)


def test_scaling_is_fitted_from_targets_and_outputs_map_back():
    model = small_module()
    y = torch.tensor([[0.0, 10.0], [1.0, 12.0], [0.0, 14.0], [1.0, 0.0]])
    mask = torch.tensor([[True, True], [True, True], [True, True], [True, False]])  # the last row has no b label
    model.heads.fit_targets(y, mask)
    scaling = model.heads.target_scaling
    assert float(scaling.mean[0]) == pytest.approx(12.0) and float(scaling.std[0]) == pytest.approx(2.0)
    features = {"a": torch.zeros(1, 8), "b": torch.zeros(1, 8)}
    raw = model.heads.heads["b"](features["b"])
    assert torch.allclose(model.heads(features)["b"], raw * 2.0 + 12.0)
    # the loss is taken in standardised units: an output at the mean scores like a 0 output against 0
    batch = {"y": torch.tensor([[0.0, 12.0]]), "task_mask": torch.ones(1, 2, dtype=torch.bool)}
    losses = model.task_losses({"a": torch.zeros(1, 2), "b": torch.full((1, 1), 14.0)}, batch)
    assert float(losses["b"]) == pytest.approx(1.0)  # ((14 - 12) / 2)²
    # fitted once: later targets do not move it
    model.heads.fit_targets(y * 100, mask)
    assert float(scaling.mean[0]) == pytest.approx(12.0)


def test_a_state_dict_from_before_scaling_loads_as_identity():
    old = {k: v for k, v in small_module().state_dict().items() if ".target_scaling." not in k}
    model = small_module()
    model.load_state_dict(old)
    scaling = model.heads.target_scaling
    assert float(scaling.mean[0]) == 0.0 and float(scaling.std[0]) == 1.0 and bool(scaling.fitted.all())


def test_constant_labels_are_not_divided_by_zero():
    model = small_module()
    model.heads.fit_targets(torch.tensor([[0.0, 3.0], [1.0, 3.0]]), torch.ones(2, 2, dtype=torch.bool))
    assert float(model.heads.target_scaling.std[0]) == 1.0 and not math.isnan(float(model.heads.target_scaling.mean[0]))
