"""A decoder exported as a ``save_pretrained`` folder: transformers loads it and generates the same tokens as
the masked model in peftlab (Llama-style FFN units pruned uniformly, with the folder's ``intermediate_size``
adjusted; a shared LoRA merged), and the refusals (non-uniform widths, task_lora)."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch

from hf_helpers import LM_EOS, lm_batch, save_tiny_causal_lm
from peftlab.errors import ConfigError
from peftlab.export import export_decoder_folder, ffn_widths
from peftlab.models import HFCausalLMBackbone, MultiTaskModule
from peftlab.models.generation import prompt_batch
from peftlab.pruning.masks import apply_masks, attach_mask
from peftlab.pruning.unit_groups import find_groups
from peftlab.sharing import FullSharing, PeftAdapter
from peftlab.sharing.task_lora import TaskLoRA
from peftlab.tasks import parse_task_specs

TASKS = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "b", "type": "causal_lm"}])


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("llama"), "llama")


def module(path, sharing) -> MultiTaskModule:
    torch.manual_seed(0)
    return MultiTaskModule(functools.partial(HFCausalLMBackbone, str(path)), TASKS, sharing=sharing).eval()


def prune_ffn_units(model, keep_per_layer) -> None:
    """Mask the weakest FFN units of each gated FFN (gate + up rows, down columns), by their L2 norm."""
    groups = [g for g in find_groups(model, "neurons") if g.name.endswith("gate_proj")]
    assert len(groups) == 2 and all(g.n_units == 64 for g in groups)
    for g, k in zip(groups, keep_per_layer):
        keep = torch.zeros(g.n_units)
        keep[g.unit_scores().topk(k).indices] = 1.0
        for _, lin in g.producers:
            attach_mask(lin, "weight").copy_(keep[:, None].expand_as(lin.weight))
        for _, lin in g.consumers:
            attach_mask(lin, "weight").copy_(keep[None, :].expand_as(lin.weight))
        apply_masks([(lin, "weight") for _, lin in g.producers + g.consumers])


def prune_kv_groups(model, keep_per_layer) -> None:
    """Mask the weakest key/value head groups of each attention layer (q, k, v rows and o columns), by their L2 norm."""
    groups = find_groups(model, "heads")
    assert len(groups) == 2 and all(g.n_units == 2 and g.unit_size == 8 for g in groups)  # 4 query heads over 2 key/value heads of 8
    for g, k in zip(groups, keep_per_layer):
        keep = torch.zeros(g.n_units)
        keep[g.unit_scores().topk(k).indices] = 1.0
        for _, lin in g.producers:
            attach_mask(lin, "weight").copy_(g.row_keep(keep, lin.out_features)[:, None].expand_as(lin.weight))
        for _, lin in g.consumers:
            attach_mask(lin, "weight").copy_(g.row_keep(keep, lin.in_features)[None, :].expand_as(lin.weight))
        apply_masks([(lin, "weight") for _, lin in g.producers + g.consumers])


def tokens(generate, batch):
    ids, mask = prompt_batch(batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"], batch["lm_labels"], LM_EOS)
    return generate(ids, mask), ids, mask


def hf_generate(folder):
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()

    def run(ids, mask):
        return loaded.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)[:, ids.shape[1] :]

    return loaded, run


def test_uniformly_pruned_ffn_units_export_as_a_smaller_folder_transformers_generates_the_same_tokens(llama_dir, tmp_path):
    m = module(llama_dir, FullSharing())
    prune_ffn_units(m, [32, 32])
    decoder = m.body.backbone
    batch = lm_batch(8)
    expected, ids, mask = tokens(lambda i, a: decoder.generate(i, a, 6), batch)
    masked_logits = decoder(**batch["inputs"])
    info = export_decoder_folder(m, tmp_path / "folder")
    assert info["intermediate_size"] == 32 and info["removed"]["neurons"] == 64
    loaded, run = hf_generate(tmp_path / "folder")
    assert loaded.config.intermediate_size == 32 and ffn_widths(loaded) == [32, 32]
    assert loaded.model.layers[0].mlp.down_proj.weight.shape == (32, 32)
    got = run(ids, mask)
    assert torch.equal(got[:, : expected.shape[1]], expected)
    torch.testing.assert_close(loaded(**batch["inputs"]).logits, masked_logits, atol=1e-5, rtol=1e-5)


def test_removed_key_value_groups_export_with_fewer_heads_and_the_same_tokens(llama_dir, tmp_path):
    m = module(llama_dir, FullSharing())
    prune_kv_groups(m, [1, 1])
    prune_ffn_units(m, [48, 48])
    decoder = m.body.backbone
    batch = lm_batch(8)
    expected, ids, mask = tokens(lambda i, a: decoder.generate(i, a, 6), batch)
    masked_logits = decoder(**batch["inputs"])
    info = export_decoder_folder(m, tmp_path / "folder")
    assert info["heads"] == (2, 1) and info["removed"]["heads"] == 2 and info["intermediate_size"] == 48
    loaded, run = hf_generate(tmp_path / "folder")
    config = loaded.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.intermediate_size) == (2, 1, 8, 48)
    assert loaded.model.layers[1].self_attn.q_proj.weight.shape == (16, 32) and loaded.model.layers[1].self_attn.k_proj.weight.shape == (8, 32)
    torch.testing.assert_close(loaded(**batch["inputs"]).logits, masked_logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(run(ids, mask)[:, : expected.shape[1]], expected)


def test_a_merged_shared_lora_exports_as_a_folder_with_the_same_tokens(llama_dir, tmp_path):
    m = module(llama_dir, PeftAdapter())
    with torch.no_grad():
        for name, p in m.body.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)  # a trained-looking adapter: it changes what is generated
    decoder = m.body.backbone
    batch = lm_batch(8)
    expected, ids, mask = tokens(lambda i, a: decoder.generate(i, a, 6), batch)
    info = export_decoder_folder(m, tmp_path / "merged")
    assert info["merged_lora"] > 0 and info["intermediate_size"] == 64
    loaded, run = hf_generate(tmp_path / "merged")
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    assert torch.equal(run(ids, mask)[:, : expected.shape[1]], expected)
    _, base_run = hf_generate(llama_dir)
    assert not torch.equal(base_run(ids, mask)[:, : expected.shape[1]], expected)  # the merge is in the folder


def test_non_uniform_widths_and_task_lora_are_refused_in_one_line(llama_dir, tmp_path):
    m = module(llama_dir, FullSharing())
    prune_ffn_units(m, [32, 48])
    with pytest.raises(ConfigError, match=r"out: pruning left FFN layers of different widths \[32, 48\]; .*scripts/export.py"):
        export_decoder_folder(m, tmp_path / "uneven")
    assert not (tmp_path / "uneven").exists()
    m = module(llama_dir, FullSharing())
    prune_kv_groups(m, [1, 2])
    with pytest.raises(ConfigError, match=r"out: pruning left attention layers with different query/key-value head counts \['2/1', '4/2'\]"):
        export_decoder_folder(m, tmp_path / "uneven_heads")
    with pytest.raises(ConfigError, match="ckpt_path: a task_lora model has one LoRA per task"):
        export_decoder_folder(module(llama_dir, TaskLoRA(r=2)), tmp_path / "routed")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConfigError, match="out: .* exists and is not empty"):
        export_decoder_folder(module(llama_dir, FullSharing()), tmp_path / "full")


@pytest.mark.slow
@pytest.mark.parametrize("unit, sizes", [("neurons", ("intermediate_size 128", [128, 128], (4, 2))), ("heads", ("intermediate_size 256", [256, 256], (2, 1)))])
def test_train_prune_and_export_a_folder_that_transformers_loads(tmp_path, unit, sizes):
    """``train.py experiment=generation_mixed strategy/pruning=neurons`` then ``scripts/export.py format=hf``, as the README writes them."""
    from transformers import AutoModelForCausalLM

    from conftest import ROOT, metrics_files, read_json, run_cli
    from peftlab.export import load_masked_model

    def export(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True, text=True, timeout=300)

    small = ["trainer.max_epochs=2", "++trainer.limit_train_batches=6", "callbacks=none", "trainer.enable_progress_bar=false", "data.sources.reverse.train=64", "data.sources.add.train=64"]
    pruning = [f"strategy/pruning={unit}", "strategy.pruning.final_sparsity=0.5"]
    proc = run_cli("train.py", "experiment=generation_mixed", *small, *pruning, f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = read_json(metrics_files(tmp_path / "logs")[0])["ckpt_path"]
    proc = export(f"ckpt_path={ckpt}", f"out={tmp_path / 'folder'}", "format=hf")
    assert proc.returncode == 0 and sizes[0] in proc.stdout, proc.stderr[-3000:]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "folder").eval()
    assert ffn_widths(loaded) == sizes[1] and (loaded.config.num_attention_heads, loaded.config.num_key_value_heads) == sizes[2]
    masked, _, datamodule = load_masked_model(ckpt)
    batch = next(iter(datamodule.test_dataloader()))
    ids, mask = prompt_batch(batch["inputs"]["input_ids"][:32], batch["inputs"]["attention_mask"][:32], batch["lm_labels"][:32], 0)
    expected = masked.body.backbone.generate(ids, mask, 6)
    got = loaded.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=2, pad_token_id=0)[:, ids.shape[1] :]
    assert torch.equal(got[:, : expected.shape[1]], expected)
    proc = export(f"ckpt_path={ckpt}", f"out={tmp_path / 'x'}", "format=onnx")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: format: must be peftlab")


def test_overwrite_replaces_only_an_earlier_export(llama_dir, tmp_path, monkeypatch):
    """overwrite=true removed whatever `out` named: a run dir, the current directory (`out=.`); a file was a traceback (review)."""
    (tmp_path / "model.pt").write_text("x")
    with pytest.raises(ConfigError, match="out: .*model.pt is a file; format=hf writes a folder"):
        export_decoder_folder(module(llama_dir, FullSharing()), tmp_path / "model.pt", overwrite=True)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="out: .* is not an earlier format=hf export"):
        export_decoder_folder(module(llama_dir, FullSharing()), run, overwrite=True)
    monkeypatch.chdir(run / "checkpoints")
    with pytest.raises(ConfigError, match="out: .* holds the current directory"):
        export_decoder_folder(module(llama_dir, FullSharing()), ".", overwrite=True)
    assert (run / "checkpoints").is_dir() and (tmp_path / "model.pt").read_text() == "x"  # nothing removed
    export_decoder_folder(module(llama_dir, FullSharing()), tmp_path / "hf")
    info = export_decoder_folder(module(llama_dir, FullSharing()), tmp_path / "hf", overwrite=True)  # an earlier export: replaced
    assert (tmp_path / "hf" / "config.json").is_file() and info["out"] == str((tmp_path / "hf").resolve())
