"""GPT-2 structured pruning (Conv1D weights [in, out], the fused q | k | v ``c_attn``): ``strategy/pruning=neurons``
masks c_fc columns and mlp.c_proj rows, ``strategy/pruning=heads`` a head's columns in each of c_attn's three
sections and its attn.c_proj rows. Checked against an independent computation (the unpruned model with the
pruned units' inputs to c_proj zeroed by a hook), physical removal, peftlab's format (``shrink_to``) and the
save_pretrained folder transformers loads (``n_inner``; head pruning refused in one line)."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT
from hf_helpers import LM_EOS, lm_batch, save_tiny_causal_lm
from peftlab.errors import ConfigError
from peftlab.export import export_decoder_folder, gpt2_ffn_widths, gpt2_heads
from peftlab.models import HFCausalLMBackbone, MultiTaskModule
from peftlab.models.generation import prompt_batch
from peftlab.pruning.compaction import compact, shrink_to
from peftlab.pruning.criteria import Heads, Neurons
from peftlab.pruning.masks import get_mask, remove_masks
from peftlab.pruning.pruned_weights import PrunedWeights
from peftlab.sharing import FullSharing
from peftlab.tasks import parse_task_specs

TASKS = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "b", "type": "causal_lm"}])
SELECTION = ("scope", "module_types", "include", "exclude", "parameters")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("gpt2"), "gpt2")  # n_embd 32, 2 heads of 16, n_inner 4 x 32


def module(path) -> MultiTaskModule:
    torch.manual_seed(0)
    return MultiTaskModule(functools.partial(HFCausalLMBackbone, str(path)), TASKS, sharing=FullSharing()).eval()


def prune(model, unit: str, sparsity: float) -> PrunedWeights:
    """What ``strategy/pruning=<unit>`` does at ``final_sparsity``: the config's own selection, one update."""
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "strategy" / "pruning" / f"{unit}.yaml"))
    pruned = PrunedWeights(Neurons() if unit == "neurons" else Heads(), {k: cfg[k] for k in SELECTION}, "strategy.pruning")
    pruned.attach(model, model.body.adapter_layers(), model.body.adapter_modules(), sparsity)
    pruned.update(sparsity)
    return pruned


def zero_inputs_of(layers, keeps):
    """Independent reference: forward pre-hooks zeroing each layer's inputs where ``keep`` is 0."""
    return [layer.register_forward_pre_hook(lambda _, args, k=k: (args[0] * k,)) for layer, k in zip(layers, keeps)]


def tokens(decoder, batch):
    ids, mask = prompt_batch(batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"], batch["lm_labels"], LM_EOS)
    return decoder.generate(ids, mask, 6), ids, mask


def test_neurons_mask_c_fc_columns_and_c_proj_rows_and_export_a_folder_with_n_inner(gpt2_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    m = module(gpt2_dir)
    reference = copy.deepcopy(m.body.backbone.model)
    blocks = m.body.backbone.model.transformer.h
    keeps = []
    for block in blocks:  # the 64 of 128 units with the largest L2 norm over c_fc column + bias and c_proj row, by hand
        fc, proj = block.mlp.c_fc, block.mlp.c_proj
        norms = (fc.weight.pow(2).sum(0) + fc.bias.pow(2) + proj.weight.pow(2).sum(1)).sqrt()
        keeps.append(torch.zeros(128).index_fill_(0, norms.topk(64).indices, 1.0))
    prune(m, "neurons", 0.5)
    for block, keep in zip(blocks, keeps):
        assert torch.equal(get_mask(block.mlp.c_fc, "weight"), keep[None, :].expand(32, 128))
        assert torch.equal(get_mask(block.mlp.c_fc, "bias"), keep)
        assert torch.equal(get_mask(block.mlp.c_proj, "weight"), keep[:, None].expand(128, 32))
        assert get_mask(block.attn.c_attn, "weight") is None  # attention stays dense
    batch = lm_batch(8)
    decoder = m.body.backbone
    masked = decoder(**batch["inputs"])
    hooks = zero_inputs_of([b.mlp.c_proj for b in reference.transformer.h], keeps)
    torch.testing.assert_close(masked, reference(**batch["inputs"]).logits, atol=1e-5, rtol=1e-5)
    [h.remove() for h in hooks]
    expected, ids, mask = tokens(decoder, batch)
    info = export_decoder_folder(m, tmp_path / "folder")
    assert info["intermediate_size"] == 64 and info["removed"]["neurons"] == 128
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "folder").eval()
    assert loaded.config.n_inner == 64 and gpt2_ffn_widths(loaded) == [64, 64]
    assert loaded.transformer.h[1].mlp.c_fc.weight.shape == (32, 64) and loaded.transformer.h[1].mlp.c_proj.weight.shape == (64, 32)
    torch.testing.assert_close(loaded(**batch["inputs"]).logits, masked, atol=1e-5, rtol=1e-5)
    got = loaded.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)[:, ids.shape[1] :]
    assert torch.equal(got[:, : expected.shape[1]], expected)


def test_heads_mask_their_q_k_v_columns_of_the_fused_c_attn_and_are_removed_with_the_same_outputs(gpt2_dir, tmp_path):
    m = module(gpt2_dir)
    reference = copy.deepcopy(m.body.backbone.model)
    blocks = m.body.backbone.model.transformer.h
    head_keeps = []
    for block in blocks:  # head h: columns h*16:(h+1)*16 of q, k and v (c_attn's sections of 32) and rows of c_proj
        w, b, proj = block.attn.c_attn.weight, block.attn.c_attn.bias, block.attn.c_proj.weight
        cols = [torch.cat([torch.arange(s * 32 + h * 16, s * 32 + (h + 1) * 16) for s in range(3)]) for h in range(2)]
        norms = torch.stack([w[:, c].pow(2).sum() + b[c].pow(2).sum() + proj[h * 16 : (h + 1) * 16].pow(2).sum() for h, c in enumerate(cols)])
        head_keeps.append(torch.zeros(2).index_fill_(0, norms.argmax()[None], 1.0))
    pruned = prune(m, "heads", 0.5)
    assert pruned.measured_sparsity() == 0.5
    for block, keep in zip(blocks, head_keeps):
        per_column = keep.repeat_interleave(16)
        assert torch.equal(get_mask(block.attn.c_attn, "weight"), per_column.repeat(3)[None, :].expand(32, 96))
        assert torch.equal(get_mask(block.attn.c_attn, "bias"), per_column.repeat(3))
        assert torch.equal(get_mask(block.attn.c_proj, "weight"), per_column[:, None].expand(32, 32))
        assert get_mask(block.mlp.c_fc, "weight") is None  # FFNs stay dense
    batch = lm_batch(8)
    decoder = m.body.backbone
    masked = decoder(**batch["inputs"])
    hooks = zero_inputs_of([b.attn.c_proj for b in reference.transformer.h], [k.repeat_interleave(16) for k in head_keeps])
    torch.testing.assert_close(masked, reference(**batch["inputs"]).logits, atol=1e-5, rtol=1e-5)
    [h.remove() for h in hooks]
    expected, ids, mask = tokens(decoder, batch)
    with pytest.raises(ConfigError, match=r"^format: GPT-2's config has no head size apart from n_embd / n_head.*without format=hf"):
        export_decoder_folder(copy.deepcopy(m), tmp_path / "folder")
    assert not (tmp_path / "folder").exists()
    assert compact(m)["heads"] == 2  # peftlab's format: heads physically removed
    assert gpt2_heads(decoder.model) == [1, 1] and blocks[0].attn.c_attn.weight.shape == (32, 48) and blocks[0].attn.c_proj.weight.shape == (16, 32)
    torch.testing.assert_close(decoder(**batch["inputs"]), masked, atol=1e-5, rtol=1e-5)
    assert torch.equal(tokens(decoder, batch)[0], expected)
    fresh = module(gpt2_dir)  # what load_exported does: shrink a freshly built model to the stored shapes
    state = m.state_dict()
    shrink_to(fresh, state)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.body.backbone(**batch["inputs"]), masked, atol=1e-5, rtol=1e-5)


def test_masks_made_permanent_then_compacted_keep_the_untouched_model_unchanged(gpt2_dir):
    m = module(gpt2_dir)
    batch = lm_batch(4)
    before = m.body.backbone(**batch["inputs"])
    remove_masks(m)
    assert compact(m) == {"neurons": 0, "heads": 0}  # nothing pruned: nothing removed, every shape kept
    assert gpt2_heads(m.body.backbone.model) == [2, 2] and gpt2_ffn_widths(m.body.backbone.model) == [128, 128]
    torch.testing.assert_close(m.body.backbone(**batch["inputs"]), before)


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["neurons", "heads"])
def test_train_a_gpt2_shaped_decoder_with_prune_share_then_export(tmp_path, unit):
    """``train.py experiment=generation_mixed model.config.model_type=gpt2 strategy=prune_share strategy/pruning=<unit>``
    (two causal-LM tasks and a classification head on one GPT-2), then ``scripts/export.py`` (format=hf for neurons;
    refused in one line for heads, whose peftlab-format export works)."""
    from transformers import AutoModelForCausalLM

    from conftest import metrics_files, read_json, run_cli
    from peftlab.export import load_exported

    def export(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True, text=True, timeout=300)

    small = ["trainer.max_epochs=2", "++trainer.limit_train_batches=6", "callbacks=none", "trainer.enable_progress_bar=false", "data.sources.reverse.train=64", "data.sources.add.train=64"]
    gpt2 = ["model.config.model_type=gpt2", "~model.config.num_key_value_heads", "~model.config.intermediate_size"]
    pruning = ["strategy=prune_share", f"strategy/pruning={unit}", "strategy.pruning.final_sparsity=0.5"]
    proc = run_cli("train.py", "experiment=generation_mixed", *small, *gpt2, *pruning, f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_json(metrics_files(tmp_path / "logs")[0])
    assert metrics["status"] == "completed" and set(metrics["tasks"]) == {"reverse", "add", "parity"}
    ckpt = metrics["ckpt_path"]
    proc = export(f"ckpt_path={ckpt}", f"out={tmp_path / 'folder'}", "format=hf")
    if unit == "heads":
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.stderr.strip().splitlines()[-1].startswith("error: format: GPT-2's config has no head size"), proc.stderr[-3000:]
        proc = export(f"ckpt_path={ckpt}", f"out={tmp_path / 'model.pt'}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert gpt2_heads(load_exported(str(tmp_path / "model.pt")).body.backbone.model) == [2, 2]  # 4 heads of 32 per layer, half removed
        return
    assert proc.returncode == 0 and "intermediate_size 256" in proc.stdout, proc.stderr[-3000:]  # n_inner 4 x 128 = 512, half kept
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "folder").eval()
    assert loaded.config.model_type == "gpt2" and loaded.config.n_inner == 256 and gpt2_ffn_widths(loaded) == [256, 256]


def test_heads_pruned_under_a_shared_lora_on_c_attn_merge_and_compact_to_the_same_outputs(gpt2_dir):
    from peftlab.export import merge_adapters
    from peftlab.sharing import PeftAdapter

    torch.manual_seed(0)
    m = MultiTaskModule(functools.partial(HFCausalLMBackbone, str(gpt2_dir)), TASKS, sharing=PeftAdapter()).eval()
    assert m.body.adapter_layers()  # peft's GPT-2 default: LoRA on the Conv1D c_attn (fan_in_fan_out)
    with torch.no_grad():
        for name, p in m.body.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)  # a trained-looking adapter: without the gate it would revive pruned heads
    prune(m, "heads", 0.5)
    batch = lm_batch(8)
    masked = m.body.backbone(**batch["inputs"])
    assert merge_adapters(m) > 0
    assert compact(m)["heads"] == 2
    assert gpt2_heads(m.body.backbone.model) == [1, 1]
    torch.testing.assert_close(m.body.backbone(**batch["inputs"]), masked, atol=1e-5, rtol=1e-5)


def test_uneven_gpt2_ffn_widths_are_refused_in_one_line(gpt2_dir, tmp_path):
    m = module(gpt2_dir)
    prune(m, "neurons", 0.5)
    fc = m.body.backbone.model.transformer.h[0].mlp.c_fc
    alive = get_mask(fc, "bias").nonzero()[0, 0]
    for attr in ("weight", "bias"):  # one more unit of layer 0 goes: widths 63 and 64
        mask = get_mask(fc, attr)
        mask[..., alive] = 0.0
    with pytest.raises(ConfigError, match=r"^out: pruning left FFN layers of different widths \[63, 64\]; .*\(GPT-2: n_inner\).*scripts/export.py"):
        export_decoder_folder(m, tmp_path / "uneven")
    assert not (tmp_path / "uneven").exists()
