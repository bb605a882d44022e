"""The non-finite guard: NaN/Inf steps are skipped and counted; too many in a row stop the run."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from peftlab.builders import build_datamodule, build_model
from peftlab.clipping.guard import NonFiniteError
from peftlab.models import MultiTaskModule
from peftlab.train import train


def poison_losses(monkeypatch, task: str, bad_calls: set[int] | None):
    """Make ``task``'s training loss NaN on the given training calls (all calls when None)."""
    original = MultiTaskModule.task_losses
    calls = {"n": 0}

    def patched(self, outputs, batch):
        losses = original(self, outputs, batch)
        if self.training and torch.is_grad_enabled():
            calls["n"] += 1
            if bad_calls is None or calls["n"] in bad_calls:
                losses[task] = losses[task] * float("nan")
        return losses

    monkeypatch.setattr(MultiTaskModule, "task_losses", patched)


def fit_steps(cfg, steps: int):
    L.seed_everything(0, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False
    )
    return model, before, trainer, dm


@pytest.mark.parametrize("weighting", ["fixed", "pcgrad"])  # automatic and manual optimisation
def test_nan_steps_are_skipped_counted_and_never_reach_the_weights(make_cfg, monkeypatch, weighting):
    poison_losses(monkeypatch, "parity", {2, 3})
    cfg = make_cfg(f"strategy/weighting={weighting}", "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "callbacks=default", "callbacks.progress_bar=null")
    metrics = train(cfg)
    assert metrics["status"] == "completed"
    rows = [r for f in Path(cfg.paths.output_dir).rglob("metrics.csv") for r in csv.DictReader(open(f))]
    skipped = [float(r["train/skipped_steps"]) for r in rows if r.get("train/skipped_steps")]
    assert max(skipped) == 2.0
    ckpt = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if isinstance(v, torch.Tensor) and v.is_floating_point())
    acc = {task: v["acc"] for task, v in metrics["tasks"].items()}  # still learns: far above chance (0.1, 0.5, 0.5)
    assert acc["digit"] > 0.6 and acc["parity"] > 0.7 and acc["high"] > 0.7, acc


@pytest.mark.parametrize("weighting", ["fixed", "pcgrad"])
def test_consecutive_nan_steps_stop_the_run_naming_the_task(make_cfg, monkeypatch, weighting):
    poison_losses(monkeypatch, "high", None)
    cfg = make_cfg(f"strategy/weighting={weighting}", "strategy.clipping.max_bad_steps=3")
    model, before, trainer, dm = fit_steps(cfg, 10)
    with pytest.raises(NonFiniteError, match=r"3 consecutive steps with a non-finite loss \(task: high\).*strategy.clipping.max_bad_steps"):
        trainer.fit(model, datamodule=dm)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing was ever applied


@pytest.mark.parametrize("weighting", ["fixed", "pcgrad"])
def test_nan_gradient_with_finite_loss_is_skipped(make_cfg, weighting):
    cfg = make_cfg(f"strategy/weighting={weighting}", "strategy.clipping.max_bad_steps=2")
    model, before, trainer, dm = fit_steps(cfg, 10)
    first = model.body.backbone.net[1].weight
    first.register_hook(lambda g: g * float("nan"))  # the loss stays finite, its gradient does not
    with pytest.raises(NonFiniteError, match="non-finite gradient"):
        trainer.fit(model, datamodule=dm)
    assert model.guard.skipped == 2
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
