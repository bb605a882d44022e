"""Every weighting method in real training: α logged and reported, representation mode, bf16,
gradient accumulation, bad input, and the commands of the issue."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import metrics_files, read_json, run_cli
from peftlab.builders import build_datamodule, build_model
from peftlab.cli import find_config_error
from peftlab.train import train

METHODS = ["equal", "fixed", "uncertainty", "dwa", "rlw", "gradnorm", "pcgrad", "cagrad", "mgda", "imtl", "famo"]
TASKS = {"digit", "parity", "high"}


def csv_rows(run_dir) -> list[dict]:
    return [r for f in Path(run_dir).rglob("metrics.csv") for r in csv.DictReader(open(f))]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_reports_alpha(make_cfg, method):
    cfg = make_cfg(f"strategy/weighting={method}", "trainer.max_epochs=3")
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert metrics["status"] == "completed" and metrics["score"] > 0.6
    alpha = read_json(run_dir / "metrics.json")["alpha"]
    assert set(alpha) == TASKS and all(math.isfinite(a) and a > 0 for a in alpha.values())
    assert (run_dir / "alpha.png").stat().st_size > 1000
    logged = [r for r in csv_rows(run_dir) if r.get("alpha/digit")]
    steps = sorted({int(r["step"]) for r in logged})
    assert steps == list(range(1, 61))  # every optimizer step (3 epochs × 20), not every 10th
    last = {t: float(next(r for r in reversed(logged) if r.get(f"alpha/{t}"))[f"alpha/{t}"]) for t in TASKS}
    if method != "dwa":  # DWA's α in metrics.json is the one computed at the last epoch end (for the next epoch)
        assert last == pytest.approx(alpha)
    if method in ("uncertainty", "dwa", "rlw", "gradnorm", "famo", "mgda", "imtl", "cagrad"):
        assert len({round(float(r["alpha/digit"]), 6) for r in logged}) > 1  # α actually moves


@pytest.mark.parametrize("method", ["pcgrad", "cagrad", "mgda", "imtl", "gradnorm"])
def test_representation_mode(make_cfg, method):
    metrics = train(make_cfg(f"strategy/weighting={method}", "strategy.weighting.mode=representation", "trainer.max_epochs=3"))
    assert metrics["score"] > 0.6 and all(math.isfinite(a) for a in metrics["alpha"].values())


@pytest.mark.parametrize("method", ["uncertainty", "gradnorm", "pcgrad", "famo", "mgda"])
def test_bf16_mixed_on_cpu(make_cfg, method):
    extra = ["strategy.weighting.mode=representation"] if method == "mgda" else []
    metrics = train(make_cfg(f"strategy/weighting={method}", "trainer.precision=bf16-mixed", "trainer.max_epochs=3", *extra))
    assert metrics["status"] == "completed" and metrics["score"] > 0.6
    assert all(math.isfinite(a) for a in metrics["alpha"].values())


def fit(cfg, max_epochs: int, limit_batches: int):
    """A short fit (SGD, no dropout, no validation); the model and its trainer (accumulating as
    ``trainer.accumulate_grad_batches`` says: Lightning's on the automatic path, the model's own on the per-task path)."""
    L.seed_everything(0, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    accumulate = cfg.trainer.get("accumulate_grad_batches", 1) if model.automatic_optimization else 1
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        limit_train_batches=limit_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        accumulate_grad_batches=accumulate,
    )
    trainer.fit(model, datamodule=dm)
    return model, trainer


SGD = ["model.backbone.dropout=0.0", "model.optimizer._target_=torch.optim.SGD", "model.optimizer.lr=0.2", "model.optimizer.weight_decay=0.0"]


@pytest.mark.parametrize("method,extra", [("equal", []), ("rlw", []), ("cagrad", ["strategy.weighting.c=0.0"]), ("fixed", ["strategy/clipping=per_task", "strategy.clipping.max_norm=100"])])
def test_accumulating_two_half_batches_equals_one_full_batch(make_cfg, method, extra):
    """Linear combinations (α fixed within an optimizer step) accumulate exactly; covers automatic
    optimisation (equal, rlw: one draw per optimizer step) and the manual per-task path."""
    common = [f"strategy/weighting={method}", *SGD, *extra]
    full, t_full = fit(make_cfg(*common, "data.batch_size=64"), max_epochs=2, limit_batches=3)
    half, t_half = fit(make_cfg(*common, "data.batch_size=32", "++trainer.accumulate_grad_batches=2"), max_epochs=2, limit_batches=6)
    assert t_full.global_step == t_half.global_step == 6
    for (name, a), b in zip(full.state_dict().items(), half.state_dict().values()):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-5), name
    assert full.weighting.alpha() == pytest.approx(half.weighting.alpha())


def config_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    err = find_config_error(info.value)
    assert err is not None, info.value
    return err


@pytest.mark.parametrize(
    "overrides,key,says",
    [
        (["strategy/weighting=fixed", "strategy.weighting.alpha=[1.0,-1.0,1.0]"], "strategy.weighting.alpha", ">= 0"),
        (["strategy/weighting=fixed", "strategy.weighting.alpha=[1.0,1.0]"], "strategy.weighting.alpha", "expected 3"),
        (["strategy/weighting=dwa", "strategy.weighting.temperature=0"], "strategy.weighting.temperature", "> 0"),
        (["strategy/weighting=dwa", "strategy.weighting.temperature=-2"], "strategy.weighting.temperature", "> 0"),
        (["strategy/weighting=cagrad", "strategy.weighting.c=-0.1"], "strategy.weighting.c", ">= 0"),
        (["strategy/weighting=pcgrad", "strategy.weighting.mode=fast"], "strategy.weighting.mode", "params, representation"),
        (["strategy/weighting=gradnorm", "strategy.weighting.asymmetry=-1"], "strategy.weighting.asymmetry", ">= 0"),
        (["strategy/weighting=famo", "strategy.weighting.w_lr=0"], "strategy.weighting.w_lr", "> 0"),
        (["strategy/weighting=stch", "strategy.weighting.mu=0"], "strategy.weighting.mu", "> 0"),
        (["strategy/weighting=db_mtl", "strategy.weighting.mode=representation"], "strategy.weighting.mode", "params"),
        (["strategy/weighting=pcd", "strategy.weighting.primary=nope"], "strategy.weighting.primary", "digit, parity, high"),
        (["strategy/weighting=krum", "strategy.weighting.n_byzantine=1"], "strategy.weighting.n_byzantine", "n_byzantine + 3"),
        (["strategy/weighting=trimmed_mean", "strategy.weighting.trim_number=2"], "strategy.weighting.trim_number", "2 * trim_number + 1"),
        (["strategy/weighting=nash_mtl", "strategy.weighting.update_weights_every=0"], "strategy.weighting.update_weights_every", ">= 1"),
        (["strategy/weighting=excess_mtl", "strategy.weighting.mode=representation"], "strategy.weighting.mode", "params"),
        (["strategy/weighting=cr_mogm", "strategy.weighting.inner=pcgrad"], "strategy.weighting.inner", "mgda, upgrad"),
        (["strategy/weighting=modo", "strategy.weighting.gamma=0"], "strategy.weighting.gamma", "> 0"),
        (["strategy/weighting=sdmgrad", "strategy.weighting.momentum=1.0"], "strategy.weighting.momentum", "[0, 1)"),
    ],
)
def test_bad_input_names_the_key(make_cfg, overrides, key, says):
    err = config_error(lambda: train(make_cfg(*overrides)))
    assert err.key == key and says in str(err)


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2_on_the_command_line(tmp_path):
    result = run_cli("train.py", "strategy/weighting=dwa", "strategy.weighting.temperature=0", log_dir=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: strategy.weighting.temperature: must be a number > 0")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_multirun_over_methods_finishes(tmp_path):
    methods = ["equal", "uncertainty", "gradnorm", "pcgrad", "famo"]
    result = run_cli("train.py", "-m", f"strategy/weighting={','.join(methods)}", "trainer.max_epochs=2", "callbacks=none", "trainer.enable_progress_bar=false", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [read_json(p) for p in metrics_files(tmp_path)]
    got = sorted(r["config"]["strategy"]["weighting"]["_target_"].rsplit(".", 1)[1] for r in runs if r.get("status") == "completed")
    assert got == sorted(["EqualWeighting", "UncertaintyWeighting", "GradNormWeighting", "PCGradWeighting", "FAMOWeighting"])


@pytest.mark.slow
def test_ddp_sim_with_pcgrad(tmp_path):
    result = run_cli("train.py", "trainer=ddp_sim", "strategy/weighting=pcgrad", "trainer.max_epochs=2", "callbacks=none", "trainer.enable_progress_bar=false", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = [read_json(p) for p in metrics_files(tmp_path)]
    assert metrics["status"] == "completed"
    # well above chance (digit 0.1, the binary tasks 0.5; 2 epochs single-process reach 0.87-0.89)
    assert metrics["tasks"]["digit"]["acc"] > 0.6 and metrics["tasks"]["parity"]["acc"] > 0.7 and metrics["tasks"]["high"]["acc"] > 0.7
    # α reported from rank zero is PCGrad's last combination, as stored with the tested weights
    alpha = metrics["alpha"]
    assert list(alpha) == ["digit", "parity", "high"] and all(math.isfinite(a) and a > 0 for a in alpha.values())
    stored = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]["weighting.last_alpha"]
    assert list(alpha.values()) == pytest.approx(stored.tolist(), rel=1e-6)
