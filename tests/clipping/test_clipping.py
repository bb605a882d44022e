"""Clipping modes: hand-computed unit checks, then real runs on both training paths with logged norms."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from peftlab.cli import find_config_error
from peftlab.clipping import AGCClipping, NormClipping, PerTaskClipping, ValueClipping, global_norm
from peftlab.errors import ConfigError
from peftlab.models import MultiTaskModule
from peftlab.train import train


def layer_with_grads(weight, grad):
    lin = nn.Linear(2, len(weight), bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
    lin.weight.grad = torch.tensor(grad)
    return lin, torch.optim.SGD(lin.parameters(), lr=0.1)


def test_norm_clipping_rescales_to_max_norm():
    lin, opt = layer_with_grads([[1.0, 0.0]], [[3.0, 4.0]])
    NormClipping(max_norm=1.0).clip(lin, opt)
    assert lin.weight.grad.flatten().tolist() == pytest.approx([0.6, 0.8])
    assert float(global_norm([lin.weight.grad])) == pytest.approx(1.0)


def test_value_clipping_clamps_entries():
    lin, opt = layer_with_grads([[1.0, 0.0]], [[3.0, -0.2]])
    ValueClipping(clip_value=0.5).clip(lin, opt)
    assert lin.weight.grad.flatten().tolist() == pytest.approx([0.5, -0.2])


def test_agc_clips_each_unit_relative_to_its_weight_norm():
    # row 0: ‖W‖ = 5, ‖G‖ = 1 > 0.1·5 = 0.5 → scaled to 0.5;  row 1: ‖W‖ = 0 → floor eps = 1e-3:
    # max 1e-4 < ‖G‖ = 0.2 → scaled to 1e-4;  a row under the limit is untouched
    lin, opt = layer_with_grads([[3.0, 4.0], [0.0, 0.0], [10.0, 0.0]], [[0.6, 0.8], [0.2, 0.0], [0.1, 0.0]])
    AGCClipping(clipping=0.1, eps=1e-3, exclude=[]).clip(lin, opt)
    assert lin.weight.grad.flatten().tolist() == pytest.approx([0.3, 0.4, 1e-4, 0.0, 0.1, 0.0], rel=1e-4)


def test_per_task_clipping_clips_rows_in_true_units():
    rows = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    assert PerTaskClipping(max_norm=1.0).clip_rows(rows.clone()).flatten().tolist() == pytest.approx([0.6, 0.8, 0.3, 0.4], rel=1e-5)
    scaled = PerTaskClipping(max_norm=1.0).clip_rows(rows.clone() * 10, scale=10.0)  # loss-scaled rows (16-mixed)
    assert scaled.flatten().tolist() == pytest.approx([6.0, 8.0, 3.0, 4.0], rel=1e-5)


def config_error(fn) -> ConfigError:
    """The ConfigError behind whatever ``fn`` raises (Hydra wraps constructor errors)."""
    with pytest.raises(Exception) as info:
        fn()
    err = find_config_error(info.value)
    assert err is not None, info.value
    return err


@pytest.mark.parametrize("mode,bad", [("norm", "max_norm=0"), ("norm", "max_norm=-1"), ("value", "clip_value=0"), ("agc", "clipping=-0.1"), ("per_task", "max_norm=0"), ("none", "max_bad_steps=0")])
def test_bad_clipping_values_name_the_key(make_cfg, mode, bad):
    err = config_error(lambda: train(make_cfg(f"strategy/clipping={mode}", f"strategy.clipping.{bad}")))
    assert err.key == "strategy.clipping." + bad.split("=")[0]


def test_per_task_clipping_needs_parameter_gradients(make_cfg):
    err = config_error(lambda: train(make_cfg("strategy/clipping=per_task", "strategy/weighting=pcgrad", "strategy.weighting.mode=representation")))
    assert err.key == "strategy.clipping" and "mode=params" in str(err)


def logged_norms(run_dir: Path) -> list[tuple[float, float]]:
    rows = [r for f in Path(run_dir).rglob("metrics.csv") for r in csv.DictReader(open(f))]
    return [(float(r["train/grad_norm"]), float(r["train/grad_norm_clipped"])) for r in rows if r.get("train/grad_norm_clipped")]


LIMITS = {"norm": ("max_norm", 0.5), "value": ("clip_value", 0.01), "agc": ("clipping", 0.01), "per_task": ("max_norm", 0.2), "none": (None, None)}


@pytest.mark.parametrize("weighting", ["fixed", "pcgrad"])  # automatic and manual optimisation
@pytest.mark.parametrize("mode", list(LIMITS))
def test_every_clipping_mode_trains_and_logs_norms_before_and_after(make_cfg, weighting, mode, monkeypatch):
    key, value = LIMITS[mode]
    overrides = [f"strategy/weighting={weighting}", f"strategy/clipping={mode}", "trainer.max_epochs=1", "trainer.log_every_n_steps=1"]
    if key:
        overrides.append(f"strategy.clipping.{key}={value}")
    calls = []
    original = MultiTaskModule._before_optimizer_step
    monkeypatch.setattr(MultiTaskModule, "_before_optimizer_step", lambda self, opt: calls.append(1) or original(self, opt))
    cfg = make_cfg(*overrides)
    metrics = train(cfg)
    assert metrics["status"] == "completed" and calls  # clipping ran before every optimizer step
    norms = logged_norms(Path(cfg.paths.output_dir))
    assert len(norms) >= 15
    for before, after in norms:
        if mode == "norm":
            assert after == pytest.approx(min(before, value), rel=1e-4)
        elif mode in ("none", "per_task"):  # per_task clipped each task before combining
            assert after == pytest.approx(before, rel=1e-6)
        else:
            assert after <= before + 1e-6
    if mode in ("value", "agc"):
        assert any(after < 0.9 * before for before, after in norms)
    if mode == "per_task":  # every task's gradient ≤ 0.2 → the combination of 3 tasks ≤ 0.6
        assert max(before for before, _ in norms) <= 3 * value + 1e-4


def first_norms(cfg, plugins=(), steps=3):
    """Norms before/after clipping at each of the first optimizer steps."""
    import lightning as L

    from peftlab.builders import build_datamodule, build_model

    L.seed_everything(0, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    seen = []
    original = model._before_optimizer_step

    def spy(opt):
        original(opt)
        seen.append({k: float(v) for k, v in model._step_metrics.items() if k.startswith("train/grad_norm")})

    model._before_optimizer_step = spy
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        plugins=list(plugins),
        log_every_n_steps=1,
    )
    trainer.fit(model, datamodule=dm)
    return seen, model


@pytest.mark.parametrize("weighting", ["fixed", "pcgrad"])
def test_grad_scaler_path_clips_unscaled_gradients(make_cfg, weighting):
    """16-mixed's loss scaling (a CPU GradScaler stands in for the GPU one): clipping and the
    logged norms see true gradients on both paths; overflow steps are the scaler's business."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    overrides = [f"strategy/weighting={weighting}", "strategy/clipping=norm", "strategy.clipping.max_norm=0.1", "model.backbone.dropout=0.0"]
    ref, _ = first_norms(make_cfg(*overrides))
    scaled, model = first_norms(make_cfg(*overrides), [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**16))])
    assert scaled[0]["train/grad_norm"] == pytest.approx(ref[0]["train/grad_norm"], rel=0.1)  # fp16 forward, but not 65536× larger
    assert scaled[0]["train/grad_norm_clipped"] == pytest.approx(0.1, rel=1e-4)
    overflow, model = first_norms(make_cfg(*overrides), [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**28))], steps=25)
    assert model.guard.skipped == 0 and all(torch.isfinite(p).all() for p in model.parameters())
    assert any(s.get("train/grad_norm_clipped") for s in overflow)  # the scaler backed off and steps resumed
