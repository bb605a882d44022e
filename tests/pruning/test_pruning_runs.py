"""Whole runs: every strategy/pruning option, the sweep's sparsities in metrics.json and checkpoints, DDP."""

from pathlib import Path

import pytest
import torch

from conftest import metrics_files, read_json, run_cli
from peftlab.train import train
from pruning_helpers import SHORT, checkpoint_masks, one_thread  # noqa: F401

QUIET = ["callbacks=model_checkpoint", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=2"]


def checkpoint_sparsity(path) -> float:
    """Zeros / entries of the masked weights actually stored in a checkpoint."""
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    ws = [sd[k[: -len("_mask")]] for k in sd if k.endswith("weight_mask")]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


@pytest.mark.parametrize("name", ["magnitude", "global_magnitude", "random", "movement", "neurons", "wanda", "sparsegpt"])
def test_each_pruning_option_runs(make_cfg, name):
    metrics = train(make_cfg(*QUIET, *SHORT, f"strategy/pruning={name}", fast=False))
    assert metrics["status"] == "completed" and metrics["pruning"]["criterion"] == name
    unit = metrics["pruning"].get("unit_sparsity", metrics["params"]["sparsity"])
    assert unit == pytest.approx(0.5, abs=2e-3)
    assert Path(metrics["sparsity_plot"]).is_file()
    assert checkpoint_sparsity(metrics["ckpt_path"]) == pytest.approx(metrics["params"]["sparsity"], abs=1e-6)


@pytest.mark.slow
def test_heads_on_an_mlp_is_one_clear_line(tmp_path):
    res = run_cli("train.py", *QUIET, *SHORT, "strategy/pruning=heads", log_dir=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: strategy.pruning.criterion: structured pruning of heads handles BERT-style")


@pytest.mark.parametrize(
    "override, key",
    [
        ("strategy.pruning.final_sparsity=1.5", "strategy.pruning.final_sparsity"),
        ("strategy.pruning.end_step=0", "strategy.pruning.end_step"),
        ("strategy.pruning.include=nope", "strategy.pruning.include"),
        ("strategy.pruning.end_step=5000", "strategy.pruning.end_step"),
    ],
)
@pytest.mark.slow
def test_bad_config_is_one_line_naming_the_key(tmp_path, override, key):
    res = run_cli("train.py", *QUIET, *SHORT, override, log_dir=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {key}: ")


@pytest.mark.slow
def test_sweep_reports_and_stores_each_sparsity(tmp_path):
    res = run_cli("train.py", "-m", *QUIET, *SHORT, "strategy.pruning.final_sparsity=0.3,0.9", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = [read_json(p) for p in metrics_files(tmp_path) if "pruning" in read_json(p)]
    assert sorted(round(r["params"]["sparsity"], 3) for r in runs) == [0.3, 0.9]
    for r in runs:
        assert r["params"]["sparsity"] == pytest.approx(r["config"]["strategy"]["pruning"]["final_sparsity"], abs=1e-3)
        assert checkpoint_sparsity(r["ckpt_path"]) == pytest.approx(r["params"]["sparsity"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "movement"])
def test_ddp_masks_equal_across_two_ranks(tmp_path, name):
    # each rank reads half of every epoch: 4 epochs x 10 steps cover the schedule (steps 0-30)
    res = run_cli("train.py", "trainer=ddp_sim", *QUIET, *SHORT, "trainer.max_epochs=4", f"strategy/pruning={name}", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = read_json(metrics_files(tmp_path)[-1])
    assert m["pruning"]["ranks_agree"] is True  # digests of every mask all-gathered from both ranks
    assert m["params"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert checkpoint_sparsity(m["ckpt_path"]) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.slow
def test_masked_checkpoint_evaluates_and_trains_further(make_cfg, tmp_path):
    """eval.py reports the same sparsity and scores for a masked checkpoint; training can continue from it."""
    first = train(make_cfg(*QUIET, *SHORT, fast=False))
    res = run_cli("eval.py", f"ckpt_path={first['ckpt_path']}", "trainer.enable_progress_bar=false", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    ev = read_json(metrics_files(tmp_path)[-1])
    assert ev["params"]["sparsity"] == pytest.approx(first["params"]["sparsity"]) and ev["score"] == pytest.approx(first["score"])
    more = train(make_cfg(*QUIET, *SHORT, "trainer.max_epochs=3", f"ckpt_path={first['ckpt_path']}", fast=False))
    assert more["params"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
