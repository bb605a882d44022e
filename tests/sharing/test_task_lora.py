"""Task-routed LoRA: isolation of tasks, mixed = each adapter alone, joint mode, peft export, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.sharing.task_lora import TaskLoRA, export_task_adapter

TASKS = ["sentiment", "topic", "score"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A tiny random BERT written with save_pretrained (what model=hf loads)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    path = tmp_path_factory.mktemp("tiny_bert")
    BertModel(cfg).save_pretrained(path)
    return path


class ClsBackbone(nn.Module):
    """AutoModel.from_pretrained + CLS pooling: the shape of model=hf's backbone (``model`` attribute, ``out_dim``)."""

    def __init__(self, path):
        super().__init__()
        from transformers import AutoModel

        self.name_or_path = str(path)
        self.model = AutoModel.from_pretrained(path)
        self.out_dim = self.model.config.hidden_size

    def forward(self, input_ids, attention_mask=None, **inputs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state[:, 0]


def _backbone_factory(path):
    try:  # the real model=hf backbone once it has landed; the same shape of module until then
        from peftlab.models.hf import HFBackbone

        return lambda: HFBackbone(str(path), pooling="cls")
    except ImportError:
        return lambda: ClsBackbone(path)


def _body(path, **kwargs):
    torch.manual_seed(1)
    policy = TaskLoRA(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False, **kwargs)  # random B: adapters differ
    return policy.build(_backbone_factory(path), TASKS).eval()


def _batch(n=6, length=9):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, 100, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1, 6:] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask}


def test_all_task_adapters_train_and_base_is_frozen(bert_dir):
    body = _body(bert_dir, shared_r=2)
    trainable = {n for n, p in body.named_parameters() if p.requires_grad}
    assert trainable == {n for n in dict(body.named_parameters()) if ".lora_" in n}
    for name in TASKS + ["shared_lora"]:
        assert any(f".lora_A.{name}." in n for n in trainable)  # peft's set_adapter never ran
    assert len(body.shared_parameters()) == 2 * 2 * 2  # A and B of query and value in 2 layers
    assert set(body.adapter_state_dict()) == trainable


def test_mixed_batch_equals_each_adapter_alone(bert_dir):
    body, batch = _body(bert_dir), _batch()
    task_ids = torch.tensor([2, 0, 1, 0, 2, 1])
    with torch.no_grad():
        mixed = body(**batch, task_ids=task_ids)
        by_mask = body(**batch, task_mask=nn.functional.one_hot(task_ids, 3).bool())
        for t, task in enumerate(TASKS):
            rows = (task_ids == t).nonzero().squeeze(1)
            alone = body(**{k: v[rows] for k, v in batch.items()}, task_ids=torch.full((len(rows),), t))[task]
            assert torch.allclose(mixed[task][rows], alone, atol=1e-6)
            assert torch.equal(by_mask[task], mixed[task])
    # the adapters really differ: routing to another task changes the features
    with torch.no_grad():
        other = body(**batch, task_ids=(task_ids + 1) % 3)
    assert float((other[TASKS[0]] - mixed[TASKS[0]]).abs().max()) > 1e-3


def test_joint_mode_runs_every_row_through_every_task(bert_dir):
    body, batch = _body(bert_dir, shared_r=2), _batch()
    with torch.no_grad():
        joint = body(**batch, task_mask=torch.ones(6, 3, dtype=torch.bool))
        for t, task in enumerate(TASKS):
            alone = body(**batch, task_ids=torch.full((6,), t))[task]
            assert torch.allclose(joint[task], alone, atol=1e-6)
        assert torch.equal(body(**batch)[TASKS[1]], joint[TASKS[1]])  # no task ids: every task (inference)


def test_step_on_task_a_changes_only_a_adapter_and_head(bert_dir):
    body, batch = _body(bert_dir, shared_r=0), _batch()
    body.train()
    heads = nn.ModuleDict({t: nn.Linear(32, 3) for t in TASKS})
    params = body.trainable_parameters() + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)  # the module's default optimizer: decays any param with a grad
    before = {f"body.{n}": p.detach().clone() for n, p in body.named_parameters()} | {f"heads.{n}": p.detach().clone() for n, p in heads.named_parameters()}
    task_mask = torch.zeros(6, 3, dtype=torch.bool)
    task_mask[:, 0] = True  # every row is labelled for task A (sentiment) only
    features = body(**batch, task_mask=task_mask)
    outputs = {t: heads[t](features[t]) for t in TASKS}
    loss = nn.functional.cross_entropy(outputs["sentiment"][task_mask[:, 0]], torch.tensor([0, 1, 2, 0, 1, 2]))  # as the module: labelled rows only
    loss.backward()
    opt.step()
    after = {f"body.{n}": p for n, p in body.named_parameters()} | {f"heads.{n}": p for n, p in heads.named_parameters()}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "the step changed nothing"
    assert all(".lora_A.sentiment." in n or ".lora_B.sentiment." in n or n.startswith("heads.sentiment.") for n in changed), sorted(changed)[:3]
    assert any(n.startswith("heads.sentiment.") for n in changed) and any(".lora_B.sentiment." in n for n in changed)


def test_loss_of_one_task_in_a_mixed_batch_gives_other_adapters_zero_gradient(bert_dir):
    body, batch = _body(bert_dir), _batch()
    task_ids = torch.tensor([0, 1, 2, 0, 1, 2])
    features = body(**batch, task_ids=task_ids)
    loss = features["topic"][task_ids == 1].pow(2).sum()
    others = body.task_parameters("sentiment") + body.task_parameters("score")
    grads = torch.autograd.grad(loss, body.task_parameters("topic") + others, allow_unused=True)
    own, rest = grads[: len(body.task_parameters("topic"))], grads[len(body.task_parameters("topic")) :]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in own)
    assert all(g is None or float(g.abs().max()) == 0.0 for g in rest)


@pytest.mark.parametrize("shared_r", [0, 2])
def test_exported_task_adapter_loads_in_peft_and_reproduces_features(bert_dir, tmp_path, shared_r):
    from peft import PeftModel
    from transformers import AutoModel

    body, batch = _body(bert_dir, shared_r=shared_r), _batch()
    out = export_task_adapter(body, "topic", tmp_path / "topic_adapter")
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(bert_dir), str(out)).eval()
    with torch.no_grad():
        ours = body(**batch, task_ids=torch.full((6,), 1))["topic"]
        theirs = peft_model(**batch).last_hidden_state[:, 0]
        base = AutoModel.from_pretrained(bert_dir)(**batch).last_hidden_state[:, 0]
    assert float((ours - theirs).abs().max()) <= 1e-5
    assert float((ours - base).abs().max()) > 1e-3  # the adapter is really there
    with pytest.raises(ConfigError, match="out_dir"):
        export_task_adapter(body, "topic", out)  # never overwrites unless asked


def test_adapter_state_round_trips_into_a_fresh_body(bert_dir):
    body, batch = _body(bert_dir, shared_r=2), _batch()
    state = body.adapter_state_dict()
    torch.manual_seed(9)
    fresh = TaskLoRA(r=4, lora_alpha=8, target_modules=["query", "value"], shared_r=2, init_lora_weights=False).build(_backbone_factory(bert_dir), TASKS).eval()
    fresh.load_adapter_state_dict(state)
    ids = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        assert all(torch.equal(body(**batch, task_ids=ids)[t], fresh(**batch, task_ids=ids)[t]) for t in TASKS)


def test_task_list_that_does_not_match_is_one_line(bert_dir):
    body, batch = _body(bert_dir), _batch()
    with pytest.raises(ConfigError) as err:
        body(**batch, task_mask=torch.ones(6, 2, dtype=torch.bool))  # data with 2 tasks, model built for 3
    assert str(err.value).startswith("data.tasks: ") and "\n" not in str(err.value) and "sentiment, topic, score" in str(err.value)
    with pytest.raises(ConfigError) as err:
        TaskLoRA(ranks={"sentimnet": 4}).build(_backbone_factory(bert_dir), TASKS)
    assert str(err.value).startswith("strategy.sharing.ranks: ") and "'sentimnet'" in str(err.value) and "\n" not in str(err.value)


def test_gradients_are_the_same_with_activation_checkpointing(bert_dir):
    """Backward recomputes the forward under checkpointing: the routing it reads must still be this batch's."""
    batch, task_ids = _batch(), torch.tensor([1, 0, 2, 2, 0, 1])
    grads = []
    for checkpointing in (False, True):
        body = _body(bert_dir).train()
        if checkpointing:
            body.backbone.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        feats = body(**batch, task_ids=task_ids)
        sum(feats[t][task_ids == i].pow(2).sum() for i, t in enumerate(TASKS)).backward()
        grads.append([p.grad.clone() for p in body.trainable_parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_adapters_on_layers_other_than_linear_are_refused_in_one_line(bert_dir):
    with pytest.raises(ConfigError) as err:
        TaskLoRA(target_modules=["word_embeddings", "query"]).build(_backbone_factory(bert_dir), TASKS)
    msg = str(err.value)
    assert msg.startswith("strategy.sharing.target_modules: ") and "word_embeddings" in msg and "\n" not in msg
