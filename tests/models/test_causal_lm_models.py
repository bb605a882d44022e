"""model=hf_causal_lm: GPT-2 and Llama-style decoders with their LM head, greedy generation checked against
``model.generate``, each sharing policy training causal-LM tasks, and the one-line refusals."""

from __future__ import annotations

import functools
import logging

import pytest
import torch

from hf_helpers import LM_EOS, lm_batch, quick_trainer, save_tiny_causal_lm
from peftlab.errors import ConfigError
from peftlab.models import HFBackbone, HFCausalLMBackbone, MultiTaskModule
from peftlab.models.generation import greedy_generate, ignore_after_eos, prompt_batch
from peftlab.sharing import BitFit, FrozenBackbone, FullSharing, PeftAdapter
from peftlab.tasks import TaskSpec, parse_task_specs
from peftlab.weighting import PCGradWeighting

LM_TASKS = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "b", "type": "causal_lm", "metrics": ["exact_match", "loss"]}])


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def lm_dir(request, tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param)


def lm_module(path, sharing=None, tasks=LM_TASKS, **kwargs) -> MultiTaskModule:
    torch.manual_seed(0)
    return MultiTaskModule(functools.partial(HFCausalLMBackbone, str(path)), tasks, sharing=sharing, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2), **kwargs)


def _left_padded_prompts():
    ids = torch.tensor([[0, 0, 5, 6, 7], [0, 9, 3, 4, 8], [11, 12, 13, 14, 15]])
    mask = (torch.arange(5)[None] >= torch.tensor([[2], [1], [0]])).long()
    return ids, mask


def test_the_backbone_gives_the_lm_logits_and_a_pad_token(lm_dir, caplog):
    with caplog.at_level(logging.INFO, logger="peftlab.models.hf_causal_lm"):
        backbone = HFCausalLMBackbone(str(lm_dir))
    assert backbone.model.config.pad_token_id == LM_EOS and "no pad token id; using the end-of-sequence id 2" in caplog.text
    assert type(backbone.model).__name__ in ("GPT2LMHeadModel", "LlamaForCausalLM") and backbone.out_dim == 40
    batch = lm_batch(4)["inputs"]
    backbone.eval()
    expected = backbone.model(**batch).logits
    torch.testing.assert_close(backbone(**batch), expected)


@pytest.mark.parametrize("stop", [False, True])
def test_greedy_generation_equals_model_generate(lm_dir, stop):
    model = HFCausalLMBackbone(str(lm_dir)).model.eval()
    ids, mask = _left_padded_prompts()
    free = greedy_generate(model, ids, mask, max_new_tokens=6, eos_token_id=None, pad_token_id=0)
    eos = int(free[0, 2]) if stop else None  # an id row 0 generates third: it stops there, the other rows when they hit it
    ours = greedy_generate(model, ids, mask, max_new_tokens=6, eos_token_id=eos, pad_token_id=0)
    reference = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=eos, pad_token_id=0)[:, ids.shape[1] :]
    assert torch.equal(ours, reference[:, : ours.shape[1]])
    if stop:  # row 0 stops at its first eos (at position 2 or before), padded from there
        first = int((ours[0] == eos).nonzero()[0])
        assert first <= 2 and (ours[0, first + 1 :] == 0).all()
        assert (ignore_after_eos(ours, eos)[0, first + 1 :] == -100).all()


def test_prompt_batch_left_pads_the_prompts():
    batch = lm_batch(5)
    ids, mask = prompt_batch(batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"], batch["lm_labels"], pad_token_id=0)
    for b in range(5):
        start = int((batch["lm_labels"][b] != -100).float().argmax())
        assert ids[b][mask[b].bool()].tolist() == batch["inputs"]["input_ids"][b, :start].tolist()
        assert mask[b, -1] == 1  # left padding: every prompt ends at the right edge


@pytest.mark.parametrize("make_sharing", [FullSharing, BitFit, PeftAdapter], ids=["full", "bitfit", "lora"])
def test_each_sharing_policy_trains_the_causal_lm_tasks(lm_dir, make_sharing):
    sharing = make_sharing()  # a fresh policy per model (peft writes the chosen targets into its config)
    if isinstance(sharing, BitFit) and "llama" in str(lm_dir):  # Llama has no bias terms
        with pytest.raises(ConfigError, match="strategy.sharing: nothing trains"):
            lm_module(lm_dir, sharing)
        return
    module = lm_module(lm_dir, sharing)
    batch = lm_batch(8)
    params = module.trainable_parameters()
    if isinstance(sharing, PeftAdapter):
        names = {n for n, p in module.named_parameters() if p.requires_grad}
        assert names and all("lora_" in n for n in names)
    opt = torch.optim.AdamW(params, lr=1e-2)
    first = None
    for _ in range(10):
        losses = module.task_losses(module(batch["inputs"]), batch)
        assert set(losses) == {"a", "b"}
        total = sum(losses.values())
        first = float(total) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total) < 0.95 * first


@pytest.mark.slow
def test_a_gradient_method_trains_and_evaluation_generates(lm_dir, tmp_path):
    module = lm_module(lm_dir, PeftAdapter(), weighting=PCGradWeighting())
    batches = [lm_batch(8, seed=s) for s in range(3)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    quick_trainer(tmp_path, max_epochs=6, num_sanity_val_steps=0).fit(module, train_dataloaders=loader, val_dataloaders=loader)
    module.eval()
    module._eval_step(batches[0], module.val_metrics)
    values = module.val_metrics.compute()
    assert set(values["a"]) == {"exact_match", "perplexity"} and set(values["b"]) == {"exact_match", "loss"}
    assert 0.0 <= values["a"]["exact_match"] <= 1.0 and values["a"]["perplexity"] < 40  # below a uniform guess over the vocabulary


def test_exact_match_counts_what_greedy_generation_gives(lm_dir):
    module = lm_module(lm_dir).eval()
    batch = lm_batch(6)
    decoder = module.body.backbone
    ids, mask = prompt_batch(batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"], batch["lm_labels"], 0)
    expected = decoder.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)[:, ids.shape[1] :]
    batch["task_mask"][:] = torch.tensor([True, False])  # every row is task a's
    with torch.no_grad():
        module._eval_step(batch, module.val_metrics)
    matches = 0
    for b in range(6):
        ref = batch["lm_labels"][b][batch["lm_labels"][b] != -100].tolist()
        matches += expected[b, : len(ref)].tolist() == ref
    assert module.val_metrics.compute()["a"]["exact_match"] == pytest.approx(matches / 6)


def test_mismatched_tasks_policies_and_bodies_are_one_line(lm_dir, tmp_path):
    with pytest.raises(ConfigError, match="strategy.sharing: nothing trains"):
        lm_module(lm_dir, FrozenBackbone())
    mixed = [*LM_TASKS, TaskSpec(name="c", label="c", num_classes=2)]
    with pytest.raises(ConfigError, match=r"model.pooling: task 'c' \(classification\) reads the decoder's pooled states"):
        lm_module(lm_dir, tasks=mixed)
    with pytest.raises(ConfigError, match="model: task 'a' is causal_lm: it needs a decoder with its LM head"):
        MultiTaskModule(functools.partial(HFBackbone, str(lm_dir), pooling="last"), LM_TASKS)
    with pytest.raises(ConfigError, match="model.name_or_path: give either"):
        HFCausalLMBackbone()


def test_a_decoder_built_from_a_config_is_seeded():
    config = {"model_type": "llama", "vocab_size": 30, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "eos_token_id": 2}
    a, b = HFCausalLMBackbone(config=config, seed=3), HFCausalLMBackbone(config=config, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.model.config.num_key_value_heads == 1 and a.out_dim == 30 and a.model.config.pad_token_id == 2
    with pytest.raises(ConfigError, match="model.config.model_type: required"):
        HFCausalLMBackbone(config={"hidden_size": 16})


@pytest.mark.parametrize("field", ["attn_implementation", "auto_map", "_name_or_path", "trust_remote_code"])
def test_a_build_config_that_names_code_is_refused(field):
    """A stored ``model.config`` supplies sizes and ids; keys that make transformers fetch or import code are one line."""
    from peftlab.models.hf_causal_lm import build_from_config

    with pytest.raises(ConfigError) as info:
        build_from_config({"model_type": "llama", "hidden_size": 32, field: "someone/kernels"}, seed=0)
    assert info.value.key == f"model.config.{field}"
