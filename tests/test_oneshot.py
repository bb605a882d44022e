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
