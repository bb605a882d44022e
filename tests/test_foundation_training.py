"""Real training runs: metrics.json contract, accuracy of the default run, eval, α, sharing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import read_json
from peftlab.builders import build_datamodule, build_model
from peftlab.evaluate import evaluate
from peftlab.train import train

CONTRACT_KEYS = {"status", "run_dir", "ckpt_path", "tasks", "score", "params", "alpha", "timing", "config"}


def test_short_run_writes_the_metrics_contract(make_cfg):
    cfg = make_cfg("trainer.max_epochs=2")
    metrics = train(cfg)
    on_disk = read_json(Path(cfg.paths.output_dir) / "metrics.json")
    assert CONTRACT_KEYS <= set(on_disk)
    assert on_disk["status"] == "completed"
    assert set(on_disk["tasks"]) == {"digit", "parity", "high"}
    for values in on_disk["tasks"].values():
        assert set(values) == {"acc", "f1"} and all(0.0 <= v <= 1.0 for v in values.values())
    mains = [on_disk["tasks"][t]["acc"] for t in ("digit", "parity", "high")]
    assert on_disk["score"] == pytest.approx(sum(mains) / 3)
    p = on_disk["params"]
    assert p["total"] == p["trainable"] == p["nonzero"] == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 14 + 14
    assert p["prunable"] == 64 * 256 + 256 * 256 and p["sparsity"] == 0.0
    assert on_disk["alpha"] == {"digit": 1.0, "parity": 1.0, "high": 1.0}
    assert set(on_disk["timing"]) == {"fit_s", "train_step_ms_median", "samples_per_s"}
    assert on_disk["timing"]["train_step_ms_median"] > 0
    assert Path(on_disk["ckpt_path"]).is_file() and "best" in Path(on_disk["ckpt_path"]).name
    assert on_disk["config"]["seed"] == 42
    assert metrics["score"] == on_disk["score"]
    assert (Path(cfg.paths.output_dir) / "alpha.png").stat().st_size > 1000
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_default_run_reaches_95_percent_on_every_task(make_cfg):
    """The full default run (30 epochs): the README's promise."""
    metrics = train(make_cfg(fast=False))
    for task, values in metrics["tasks"].items():
        assert values["acc"] >= 0.95, (task, values)


def test_eval_reproduces_the_test_metrics(make_cfg):
    trained = train(make_cfg("trainer.max_epochs=2"))
    evaluated = evaluate(make_cfg(f"ckpt_path={trained['ckpt_path']}", config_name="eval"))
    assert evaluated["tasks"] == trained["tasks"]
    assert evaluated["score"] == trained["score"]
    assert evaluated["params"] == trained["params"]


def test_fixed_alpha_scales_each_task_loss(make_cfg):
    """The combined loss equals Σ α_i L_i computed by hand from per-task cross-entropies."""
    alpha = [0.6, 0.3, 0.1]
    cfg = make_cfg("strategy.weighting.alpha=[0.6,0.3,0.1]")
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    batch = dm.splits["train"][list(range(32))]
    out = model(batch["inputs"])
    by_hand = sum(a * torch.nn.functional.cross_entropy(out[name], batch["y"][:, t].long()) for t, (a, name) in enumerate(zip(alpha, ["digit", "parity", "high"])))
    combined = model.weighting(model.task_losses(out, batch))
    assert float(combined) == pytest.approx(float(by_hand), rel=1e-6)
    # and the gradient follows α: zeroing a task's weight removes its gradient from its head
    cfg0 = make_cfg("strategy.weighting.alpha={digit: 1.0, parity: 0.0, high: 2.0}")
    model0 = build_model(cfg0)
    model0.weighting(model0.task_losses(model0(batch["inputs"]), batch)).backward()
    assert float(model0.heads.heads["parity"].weight.grad.abs().sum()) == 0.0
    assert float(model0.heads.heads["high"].weight.grad.abs().sum()) > 0.0
    assert model0.weighting.alpha() == {"digit": 1.0, "parity": 0.0, "high": 2.0}


def test_fixed_alpha_normalize_rescales_to_task_count(make_cfg):
    cfg = make_cfg("strategy.weighting.alpha=[2,1,1]", "strategy.weighting.normalize=true")
    model = build_model(cfg)
    assert model.weighting.alpha() == pytest.approx({"digit": 1.5, "parity": 0.75, "high": 0.75})


@pytest.mark.slow
def test_separate_strategy_has_one_backbone_per_task(make_cfg):
    shared = train(make_cfg())
    separate = train(make_cfg("strategy=separate"))
    backbone = 64 * 256 + 256 + 256 * 256 + 256
    heads = 256 * 14 + 14
    assert shared["params"]["total"] == backbone + heads
    assert separate["params"]["total"] == 3 * backbone + heads
    assert separate["status"] == "completed"


def test_mixed_mode_trains(make_cfg):
    metrics = train(make_cfg("data=digits_mixed", "trainer.max_epochs=3"))
    assert metrics["status"] == "completed"
    # well above chance (digit 0.1, the binary tasks 0.5); measured 0.86-0.89 after 3 epochs
    acc = {task: v["acc"] for task, v in metrics["tasks"].items()}
    assert acc["digit"] > 0.6 and acc["parity"] > 0.7 and acc["high"] > 0.7, acc


@pytest.mark.slow
def test_resuming_from_last_checkpoint_gives_the_same_weights(make_cfg, tmp_path):
    """An interrupted run resumed from last.ckpt ends exactly where an uninterrupted one does."""
    from pathlib import Path

    full = train(make_cfg("trainer.max_epochs=4"))
    first = make_cfg("trainer.max_epochs=4", "+trainer.max_steps=40")  # "killed" after 2 of 4 epochs
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = train(make_cfg("trainer.max_epochs=4", f"ckpt_path={last}"))
    a = torch.load(Path(full["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["tasks"] == full["tasks"]


@pytest.mark.slow
def test_last_checkpoint_is_rewritten_every_epoch(make_cfg):
    """last.ckpt (what a killed run resumes from) follows training even when val/score stops improving."""
    from pathlib import Path

    cfg = make_cfg("trainer.max_epochs=4", "model.optimizer.lr=0.0")  # lr 0: the score never improves
    train(cfg)
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    last = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3 and last["global_step"] == 4 * 20
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]


@pytest.mark.parametrize("debug", ["overfit", "fast_dev_run", "limit_batches"])
def test_debug_options_run(make_cfg, debug):
    """Each debug option trains to the end (overfit_batches keeps peftlab's batch format)."""
    metrics = train(make_cfg(f"debug={debug}", "trainer.max_epochs=2"))
    assert metrics["status"] == "completed"
    assert set(metrics["tasks"]) == {"digit", "parity", "high"}
