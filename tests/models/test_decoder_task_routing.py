"""Per-task models on decoders: ``task_lora`` (one adapter per task, routed per row in training and in
greedy generation with the key/value cache) checked against peft's single-adapter ``generate`` on the
exported adapter folders, ``separate`` (one decoder per task), and classification / regression heads on
a decoder's pooled states beside causal-LM tasks."""

from __future__ import annotations

import functools

import pytest
import torch

from hf_helpers import LM_EOS, LM_VOCAB, lm_batch, save_tiny_causal_lm
from peftlab.errors import ConfigError
from peftlab.models import HFCausalLMBackbone, MultiTaskModule
from peftlab.models.causal_lm_body import generate_rows
from peftlab.models.generation import prompt_batch
from peftlab.sharing import BitFit, FullSharing, PeftAdapter, SeparateBackbones
from peftlab.sharing.task_lora import TaskLoRA, export_task_adapter
from peftlab.tasks import parse_task_specs

LM_TASKS = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "b", "type": "causal_lm"}])
MIXED_TASKS = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "c", "label": "c", "num_classes": 2}, {"name": "r", "label": "r", "num_classes": 0}])


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def lm_dir(request, tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param)


def module(path, sharing, tasks=LM_TASKS, pooling=None, lr=1e-2, **kwargs) -> MultiTaskModule:
    torch.manual_seed(0)
    backbone = functools.partial(HFCausalLMBackbone, str(path), pooling=pooling)
    return MultiTaskModule(backbone, tasks, sharing=sharing, optimizer=lambda params: torch.optim.AdamW(params, lr=lr), **kwargs)


def randomise_adapters(body) -> None:
    """LoRA's B starts at zero (every adapter the base model): give each adapter its own update."""
    with torch.no_grad():
        for name, p in body.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)


def prompts(batch):
    ids, mask = prompt_batch(batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"], batch["lm_labels"], LM_EOS)
    return ids, mask, batch["task_mask"].float().argmax(1)


def mixed_batch(n: int = 8, seed: int = 0) -> dict:
    """Rows cycling through causal-LM task a, classification c (first prompt token's parity) and regression r (its value / 40)."""
    batch = lm_batch(n, seed=seed, tasks=3)
    first = batch["inputs"]["input_ids"][:, 0].float()
    batch["y"] = torch.stack([torch.ones(n), first % 2, first / 40], dim=1) * batch["task_mask"]
    text_rows = ~batch["task_mask"][:, 0]
    response = batch["lm_labels"] != -100
    batch["inputs"]["attention_mask"][text_rows] *= ~response[text_rows]  # c and r rows: the prompt alone (it ends on a varying token)
    batch["lm_labels"][text_rows] = -100  # only task a's rows have token labels
    return batch


@pytest.mark.parametrize("shared_r", [0, 2], ids=["own", "with_shared"])
def test_task_lora_generates_each_row_through_its_own_adapter_as_peft_does(lm_dir, tmp_path, shared_r):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = module(lm_dir, TaskLoRA(r=4, shared_r=shared_r)).eval()
    randomise_adapters(m.body)
    ids, mask, task_ids = prompts(lm_batch(8))  # a mixed batch: rows alternate a, b
    ours = generate_rows(m.body, task_ids, ids, mask, max_new_tokens=6)
    base_tokens = AutoModelForCausalLM.from_pretrained(lm_dir).generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)
    for t, task in enumerate(["a", "b"]):
        folder = export_task_adapter(m.body, task, tmp_path / task)
        peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lm_dir), str(folder)).eval()
        reference = peft_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)[:, ids.shape[1] :]
        rows = task_ids == t
        assert torch.equal(ours[rows], reference[rows, : ours.shape[1]])
        assert not torch.equal(reference[rows], base_tokens[rows, ids.shape[1] :])  # the adapter changes what is generated


def test_task_lora_trains_each_task_through_its_own_adapter(lm_dir):
    m = module(lm_dir, TaskLoRA(r=4))
    batch = lm_batch(8)
    batch["task_mask"][:, 1] = False  # only task a's rows: b's adapter gets no gradient
    batch["task_mask"][:, 0] = True
    losses = m.task_losses(m(batch["inputs"], batch["task_mask"]), batch)
    assert set(losses) == {"a"}
    losses["a"].backward()
    grads_b = [p.grad for n, p in m.body.named_parameters() if ".lora_B.a." in n]  # (A's gradient is 0 while B is)
    assert grads_b and all(g is not None and g.abs().sum() > 0 for g in grads_b)
    assert all(p.grad is None for p in m.body.task_parameters("b"))
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-2)
    batch = lm_batch(8)
    first = None
    for _ in range(10):
        total = sum(m.task_losses(m(batch["inputs"], batch["task_mask"]), batch).values())
        first = float(total) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total) < 0.95 * first


def test_separate_decoders_train_and_generate_each_task_with_its_own(lm_dir):
    m = module(lm_dir, SeparateBackbones())
    decoders = m.body.backbones
    with torch.no_grad():  # make the two decoders differ
        for p in decoders["b"].parameters():
            p.add_(torch.randn_like(p) * 0.3)
    m.eval()
    ids, mask, task_ids = prompts(lm_batch(8))
    ours = generate_rows(m.body, task_ids, ids, mask, max_new_tokens=5)
    for t, task in enumerate(["a", "b"]):
        rows = task_ids == t
        alone = decoders[task].model.generate(input_ids=ids[rows], attention_mask=mask[rows], max_new_tokens=5, do_sample=False, eos_token_id=LM_EOS, pad_token_id=LM_EOS)
        assert torch.equal(ours[rows, : alone.shape[1] - ids.shape[1]], alone[:, ids.shape[1] :])
    m.train()
    batch = lm_batch(8)
    outputs = m(batch["inputs"], batch["task_mask"])
    torch.testing.assert_close(outputs["b"], decoders["b"](**batch["inputs"]))


def test_pooled_states_are_the_last_real_tokens_hidden_state(lm_dir):
    backbone = HFCausalLMBackbone(str(lm_dir), pooling="last").eval()
    batch = lm_batch(4)["inputs"]
    out = backbone(**batch)
    hidden = backbone.model(**batch, output_hidden_states=True).hidden_states[-1]
    last = batch["attention_mask"].sum(1) - 1  # right padding: the last real token
    torch.testing.assert_close(out["pooled"], hidden[torch.arange(4), last])
    assert out["logits"].shape == (4, batch["input_ids"].shape[1], 40) and backbone.out_dim == 32


@pytest.mark.parametrize("make_sharing", [FullSharing, PeftAdapter, TaskLoRA, SeparateBackbones, BitFit], ids=["full", "lora", "task_lora", "separate", "bitfit"])
def test_classification_and_regression_heads_train_beside_a_causal_lm_task(lm_dir, make_sharing):
    if make_sharing is BitFit and "llama" in str(lm_dir):
        pytest.skip("Llama-style decoders have no biases")
    m = module(lm_dir, make_sharing(), tasks=MIXED_TASKS, pooling="last", lr=3e-3)
    assert m.heads.heads["c"].in_features == 32 and isinstance(m.heads.heads["a"], torch.nn.Identity)
    batch = mixed_batch(9)
    outputs = m(batch["inputs"], batch["task_mask"])
    assert outputs["a"].shape[-1] == 40 and outputs["c"].shape == (9, 2) and outputs["r"].shape == (9, 1)
    opt = m.configure_optimizers()
    first = None
    for _ in range(20):
        losses = m.task_losses(m(batch["inputs"], batch["task_mask"]), batch)
        assert set(losses) == {"a", "c", "r"}
        total = sum(losses.values())
        first = {k: float(v) for k, v in losses.items()} if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(losses["a"]) < first["a"] and float(losses["c"]) < first["c"]  # the LM head's task and a pooled head's both learn
    assert float(total) < 0.8 * sum(first.values())


def test_a_head_on_a_decoder_without_pooling_is_one_line(lm_dir):
    with pytest.raises(ConfigError, match=r"model.pooling: task 'c' \(classification\) reads the decoder's pooled states: set model.pooling=last"):
        module(lm_dir, FullSharing(), tasks=MIXED_TASKS)
    with pytest.raises(ConfigError, match="model.pooling: must be null"):
        HFCausalLMBackbone(str(lm_dir), pooling="first")


def test_predict_generates_each_prompt_through_every_tasks_adapter(lm_dir, tmp_path):
    """predict.py's generation rows on a task_lora decoder: one column per causal-LM task, each equal
    to routing every prompt through that task's adapter (a shared decoder keeps one ``generation``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from peftlab.generate_text import generation_rows
    from peftlab.inference import InferenceModel, TaskNetwork

    vocab = {f"w{i}": i for i in range(LM_VOCAB)}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="w0", pad_token="w2", eos_token="w2").save_pretrained(tmp_path / "tok")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path / "tok")
    texts = ["w5 w9 w3", "w7 w11", "w30 w4 w4 w8"]
    for sharing, columns in [(TaskLoRA(r=4), ["generation/a", "generation/b"]), (FullSharing(), ["generation"])]:
        m = module(lm_dir, sharing).eval()
        randomise_adapters(m.body)
        model = InferenceModel(TaskNetwork(m.body, m.heads), LM_TASKS, tokenizer=tokenizer, max_length=16)
        rows = generation_rows(model, texts, max_new_tokens=5)
        assert [list(r) for r in rows] == [["text", *columns]] * len(texts)
        enc = tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
        for t, column in enumerate(columns):
            want = generate_rows(m.body, torch.full((len(texts),), t), enc["input_ids"], enc["attention_mask"], 5)
            for row, tokens in zip(rows, want):
                kept = tokens.tolist()[: tokens.tolist().index(LM_EOS)] if LM_EOS in tokens.tolist() else tokens.tolist()
                assert row[column] == tokenizer.decode(kept, skip_special_tokens=True)
        if len(columns) == 2:
            assert any(r["generation/a"] != r["generation/b"] for r in rows)  # the adapters differ
