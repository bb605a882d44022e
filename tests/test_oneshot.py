"""strategy=oneshot_prune: calibrate, prune, test — the pruned checkpoint evaluates and exports like any pruned run."""

from pathlib import Path

import pytest
import torch

from conftest import read_json
from peftlab.oneshot import oneshot_prune
from pruning_helpers import checkpoint_masks, one_thread  # noqa: F401

QUIET = ["callbacks=model_checkpoint", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=2"]


def test_oneshot_sparsegpt_2_4_from_a_dense_checkpoint(make_cfg):
    dense = oneshot_prune(make_cfg(*QUIET, "strategy=oneshot_prune", "strategy/pruning=magnitude", fast=False))  # trains the dense model itself
    source = Path(read_json(Path(dense["run_dir"]) / "dense" / "metrics.json")["ckpt_path"])  # the dense run's best checkpoint
    assert source.is_file() and dense["params"]["sparsity"] == pytest.approx(0.5)
    cfg = make_cfg(*QUIET, "strategy=oneshot_prune", "strategy/pruning=sparsegpt", "strategy.pruning.criterion.n_m=[2,4]", f"strategy.from_ckpt={source}", fast=False)
    metrics = oneshot_prune(cfg)
    assert metrics["status"] == "completed" and metrics["pruning"]["criterion"] == "sparsegpt"
    assert metrics["params"]["sparsity"] == pytest.approx(0.5) and metrics["timing"]["calibrate_and_prune_s"] < 30
    assert metrics["dense"]["score"] > 0.5 and metrics["score"] > 0.5  # digits: a trained model stays a trained model
    masks = checkpoint_masks(metrics["ckpt_path"])
    assert masks and all((m.reshape(-1, 4).sum(1) == 2).all() for m in masks.values())
    sd = torch.load(metrics["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    for name, mask in masks.items():
        assert torch.equal(sd[name[: -len("_mask")]] * mask, sd[name[: -len("_mask")]])

    from peftlab.export import export_checkpoint

    semi = export_checkpoint(metrics["ckpt_path"], str(Path(metrics["run_dir"]) / "model.pt"))["semi_structured"]
    if torch.cuda.is_available():  # the GPU's sparse kernels, timed against dense
        assert semi["applied"] and semi["layers"] == len(masks) and semi["speedup"] > 0
    else:
        assert not semi["applied"] and semi["note"].startswith("skipped: torch.sparse.to_sparse_semi_structured runs on CUDA")

    from peftlab.evaluate import evaluate

    again = evaluate(make_cfg(f"ckpt_path={metrics['ckpt_path']}", config_name="eval"))
    assert again["score"] == pytest.approx(metrics["score"], abs=1e-6)


@pytest.mark.slow
def test_an_interrupted_dense_run_continues_and_a_completed_one_is_taken(make_cfg):
    from omegaconf import open_dict

    from peftlab.dense_first import dense_config, train_dense

    cfg = make_cfg(*QUIET, "callbacks=default", "strategy=oneshot_prune", fast=False)
    out = Path(cfg.paths.output_dir) / "dense"
    crashing = dense_config(cfg, out)
    with open_dict(crashing):
        crashing.callbacks.crash = {"_target_": "kill_helpers.RaiseAtStep", "step": 30}  # dies mid-run, after a last.ckpt
    with pytest.raises(RuntimeError, match="crashed after step 30"):
        train_dense(crashing, {})
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (out / "metrics.json").exists()
    ckpt = train_dense(dense_config(cfg, out), {})  # the same command again: continues from last.ckpt
    done = read_json(out / "metrics.json")
    assert done["config"]["ckpt_path"] == str(last) and Path(ckpt).is_file()
    before = (out / "metrics.json").read_bytes()
    keep = {}
    assert train_dense(dense_config(cfg, out), keep) == ckpt and "model" not in keep  # completed: taken, not trained again
    assert (out / "metrics.json").read_bytes() == before
