"""Export: physically smaller model, same outputs, smaller file; bad input is one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peftlab.export import load_exported, load_masked_model
from peftlab.train import train
from pruning_helpers import SHORT, one_thread  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CKPT = ["callbacks=model_checkpoint", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def export(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("pruning, sparsity", [("neurons", 0.5), ("magnitude", 0.9)])
def test_export_is_equivalent_and_smaller(make_cfg, tmp_path, pruning, sparsity):
    metrics = train(make_cfg(*CKPT, *SHORT, f"strategy/pruning={pruning}", f"strategy.pruning.final_sparsity={sparsity}", fast=False))
    ckpt = metrics["ckpt_path"]
    assert "best" in Path(ckpt).name  # chosen among checkpoints at final sparsity
    out = tmp_path / "model.pt"
    res = export(f"ckpt_path={ckpt}", f"out={out}")
    assert res.returncode == 0, res.stderr
    masked, _, dm = load_masked_model(ckpt)
    exported = load_exported(str(out))
    x = next(iter(dm.test_dataloader()))["inputs"]
    with torch.no_grad():
        a, b = masked(x), exported(x)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    n_masked = sum(p.numel() for p in masked.parameters())
    n_export = sum(p.numel() for p in exported.parameters())
    dense_copy = tmp_path / "dense.pt"
    assert export(f"ckpt_path={ckpt}", f"out={dense_copy}", "sparse=false").returncode == 0
    assert out.stat().st_size < dense_copy.stat().st_size or pruning == "neurons"
    if pruning == "neurons":  # half of each hidden layer's units are gone: 64*128 + 128*128 + heads' 128 inputs
        assert exported.body.backbone.net[1].out_features == 128 and exported.body.backbone.net[4].out_features == 128
        assert n_export < 0.35 * n_masked
        assert out.stat().st_size < 0.4 * Path(ckpt).stat().st_size
    else:
        assert n_export == n_masked
        assert out.stat().st_size < 0.6 * dense_copy.stat().st_size  # CSR storage at 90 % zeros


@pytest.mark.slow
def test_bad_ckpt_path_is_one_line_and_overwrites_nothing(tmp_path):
    out = tmp_path / "model.pt"
    out.write_text("keep me")
    res = export(f"ckpt_path={tmp_path / 'missing.ckpt'}", f"out={out}")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ckpt_path:")
    assert out.read_text() == "keep me"
    not_ckpt = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6"}, not_ckpt)  # a Lightning checkpoint, not peftlab's
    res = export(f"ckpt_path={not_ckpt}", f"out={tmp_path / 'new.pt'}")
    assert res.returncode == 2 and "not written by peftlab" in res.stderr and not (tmp_path / "new.pt").exists()
    res = export("out=x.pt")
    assert res.returncode == 2 and res.stderr.startswith("error: ckpt_path: is required")


@pytest.mark.slow
def test_existing_out_is_refused_unless_asked(make_cfg, tmp_path):
    metrics = train(make_cfg(*CKPT, *SHORT, fast=False))
    out = tmp_path / "model.pt"
    out.write_text("keep me")
    res = export(f"ckpt_path={metrics['ckpt_path']}", f"out={out}")
    assert res.returncode == 2 and res.stderr.startswith("error: out:") and out.read_text() == "keep me"
    assert export(f"ckpt_path={metrics['ckpt_path']}", f"out={out}", "overwrite=true").returncode == 0
    assert torch.load(out, weights_only=True)["format"] == "peftlab-export-v1"


@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["dwa", "famo"])
def test_eval_and_export_of_a_weighting_with_extra_state(make_cfg, tmp_path, weighting):
    """DWA's partial sums and FAMO's logits live in ``get_extra_state`` (a dict, not a tensor):
    eval.py and export read such checkpoints, also one written before DWA kept extra state."""
    from peftlab.evaluate import evaluate

    trained = train(make_cfg("trainer.max_epochs=2", f"strategy/weighting={weighting}", "+trainer.limit_train_batches=4", fast=False))
    ckpt = Path(trained["run_dir"]) / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert any(k.endswith("_extra_state") and isinstance(v, dict) for k, v in state.items())
    evaluated = evaluate(make_cfg(f"ckpt_path={ckpt}", config_name="eval"))
    assert evaluated["tasks"] and all(v == v for t in evaluated["tasks"].values() for v in t.values())
    assert export(f"ckpt_path={ckpt}", f"out={tmp_path / 'model.pt'}").returncode == 0
    if weighting == "dwa":  # a checkpoint from before DWA kept its partial sums
        old = tmp_path / "old.ckpt"
        checkpoint = torch.load(ckpt, weights_only=True)
        del checkpoint["state_dict"]["weighting._extra_state"]
        torch.save(checkpoint, old)
        assert evaluate(make_cfg(f"ckpt_path={old}", config_name="eval"))["tasks"] == evaluated["tasks"]
