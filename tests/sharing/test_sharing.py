"""Sharing policies on a tiny pretrained transformer: what trains, that it learns, adapter-only checkpoints."""

from __future__ import annotations

import peft
import pytest
import torch

from hf_helpers import HIDDEN, INTERMEDIATE, LAYERS, TASKS, hf_module, quick_trainer, save_tiny_bert, save_tiny_gpt2, task_losses, text_batches
from peftlab.checkpoints.trainable_state import BASE_MODEL_KEY
from peftlab.errors import ConfigError
from peftlab.reporting import count_parameters
from peftlab.sharing import BitFit, FrozenBackbone, FullSharing, PeftAdapter, SeparateBackbones

HEADS = sum(HIDDEN * t.out_dim + t.out_dim for t in TASKS)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def lora(r: int = 4, **kw) -> PeftAdapter:
    return PeftAdapter(peft.LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, **kw))


def test_trainable_counts_equal_a_hand_count(bert_dir):
    """frozen: heads; BitFit: every bias + heads; LoRA r=4 on query/value: 2 modules × 2 layers × (r·H + H·r) + heads."""
    per_layer_biases = 4 * HIDDEN + HIDDEN + INTERMEDIATE + HIDDEN + HIDDEN  # q k v o, attn LayerNorm, intermediate, output, LayerNorm
    bitfit = LAYERS * per_layer_biases + HIDDEN + HIDDEN  # + embedding LayerNorm + pooler
    expected = {"frozen": HEADS, "bitfit": bitfit + HEADS, "lora": LAYERS * 2 * (4 * HIDDEN + HIDDEN * 4) + HEADS}
    full = hf_module(bert_dir, FullSharing())
    total_base = sum(p.numel() for p in full.body.parameters())
    for name, sharing in {"frozen": FrozenBackbone(), "bitfit": BitFit(), "lora": lora(target_modules=["query", "value"])}.items():
        module = hf_module(bert_dir, sharing)
        counts = count_parameters(module)
        assert counts["trainable"] == expected[name], name
        assert sum(p.numel() for p in module.configure_optimizers().param_groups[0]["params"]) == expected[name]
        assert counts["trainable_pct"] == pytest.approx(100 * expected[name] / counts["total"])
        assert counts["total"] == total_base + HEADS + (expected["lora"] - HEADS if name == "lora" else 0)
    assert count_parameters(full)["trainable"] == total_base + HEADS


def test_the_optimizer_follows_the_policy_not_requires_grad_flipped_later(bert_dir):
    module = hf_module(bert_dir, lora(target_modules=["query", "value"]))
    adapter = {id(p) for p in module.body.trainable_parameters()}
    for p in module.body.parameters():  # e.g. what peft's set_adapter does to inactive adapters
        p.requires_grad_(True)
    opt_params = module.configure_optimizers().param_groups[0]["params"]
    assert {id(p) for p in opt_params} == adapter | {id(p) for p in module.heads.parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["full", "frozen", "bitfit", "lora", "separate"])
def test_training_lowers_each_tasks_loss(bert_dir, name):
    sharing = {"full": FullSharing(), "frozen": FrozenBackbone(), "bitfit": BitFit(), "lora": lora(target_modules=["query", "value"]), "separate": SeparateBackbones()}[name]
    module = hf_module(bert_dir, sharing, lr=1e-3 if name in ("full", "separate") else 1e-2)
    batches = text_batches()
    module.heads.fit_targets(torch.cat([b["y"] for b in batches]), torch.cat([b["task_mask"] for b in batches]), across_ranks=False)
    before = task_losses(module, batches)  # (losses in the units the heads learn: standardised regression targets)
    frozen_before = {n: p.detach().clone() for n, p in module.body.named_parameters() if not p.requires_grad}
    quick_trainer(max_epochs=8).fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    after = task_losses(module, batches)
    assert all(after[t] < 0.8 * before[t] for t in before), (before, after)
    assert all(torch.equal(p, frozen_before[n]) for n, p in module.body.named_parameters() if n in frozen_before)


def test_target_modules_that_match_nothing_are_one_line(bert_dir):
    with pytest.raises(ConfigError) as info:
        hf_module(bert_dir, lora(target_modules=["c_attn"]))
    assert info.value.key == "strategy.sharing.adapter.target_modules" and "c_attn" in str(info.value)


def test_peft_defaults_follow_the_architecture(bert_dir, tmp_path):
    """target_modules=null: query/value in BERT, c_attn in GPT-2; DoRA and IA3 by config."""
    names = lambda m: sorted({n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in m.body.named_parameters() if "lora_A" in n})  # noqa: E731
    assert names(hf_module(bert_dir, lora())) == ["query", "value"]
    assert names(hf_module(save_tiny_gpt2(tmp_path / "gpt2"), lora(), pooling="last")) == ["c_attn"]
    dora = hf_module(bert_dir, lora(use_dora=True))
    assert any("lora_magnitude_vector" in n for n, _ in dora.body.named_parameters() if id(_) in {id(p) for p in dora.body.trainable_parameters()})
    ia3 = hf_module(bert_dir, PeftAdapter({"peft_type": "IA3"}))
    assert ia3.body.trainable_parameters() and all("ia3_l" in n for n, p in ia3.body.named_parameters() if p.requires_grad)


def test_adapter_only_checkpoint_reloads_identically_and_resumes(bert_dir, tmp_path):
    """The checkpoint holds the adapter, heads and buffers, not the frozen base; it loads back
    to identical outputs, and resuming from it gives the run that never stopped."""
    batches = text_batches()
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    sharing = lambda: lora(target_modules=["query", "value"])  # noqa: E731

    first = hf_module(bert_dir, sharing())
    quick_trainer(tmp_path / "a", max_epochs=1).fit(first, train_dataloaders=loader)
    ckpt_path = next((tmp_path / "a").rglob("*.ckpt"))
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    trainable = {f"body.{n}" for n, p in first.body.named_parameters() if p.requires_grad} | {f"heads.{n}" for n, _ in first.heads.named_parameters()}
    params_in_ckpt = {k for k in ckpt["state_dict"] if k in dict(first.named_parameters())}
    assert params_in_ckpt == trainable
    assert ckpt[BASE_MODEL_KEY]["name_or_path"] == str(bert_dir)
    assert ckpt[BASE_MODEL_KEY]["frozen_keys"] == len(first.body.frozen_parameter_names())

    reloaded = hf_module(bert_dir, sharing())
    reloaded.on_load_checkpoint(ckpt)
    reloaded.load_state_dict(ckpt["state_dict"])  # strict: nothing missing, nothing extra
    first.eval(), reloaded.eval()
    with torch.no_grad():
        for name, out in first(batches[0]["inputs"]).items():
            assert torch.equal(out, reloaded(batches[0]["inputs"])[name])

    resumed = hf_module(bert_dir, sharing())
    quick_trainer(tmp_path / "b", max_epochs=2).fit(resumed, train_dataloaders=loader, ckpt_path=ckpt_path)
    straight = hf_module(bert_dir, sharing())
    quick_trainer(max_epochs=2).fit(straight, train_dataloaders=loader)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_checkpoint_from_another_sharing_is_refused(bert_dir, tmp_path):
    module = hf_module(bert_dir, BitFit())
    quick_trainer(tmp_path, max_steps=1).fit(module, train_dataloaders=torch.utils.data.DataLoader(text_batches(1), batch_size=None))
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=False)
    with pytest.raises(ConfigError, match="ckpt_path"):
        hf_module(bert_dir, FrozenBackbone()).on_load_checkpoint(ckpt)
