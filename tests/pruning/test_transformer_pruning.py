"""Structured pruning on transformers: gate-gradient importance (checked against explicit gates),
head removal, export equal to the masked model, too many heads, and pruning under peft LoRA."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from peftlab.callbacks.pruning import PruningCallback
from peftlab.errors import ConfigError
from peftlab.export import merge_adapters
from peftlab.pruning.compaction import compact, remove_heads
from peftlab.pruning.criteria import GateGradient, Heads, Neurons
from peftlab.pruning.unit_groups import find_groups
from peftlab.sharing import PeftBody

HEADS = r"attention\.(self\.(query|key|value)|output\.dense)"
FFN = r"(intermediate|output)\.dense"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A tiny random BERT (4 heads of 8, FFN 64) written with save_pretrained."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    path = tmp_path_factory.mktemp("bert4")
    BertModel(cfg).save_pretrained(path)
    return path


def _bert(path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path).eval()


def _holder(encoder):
    holder = nn.Module()
    holder.body = encoder  # what the callback prunes: scope=body, as the module's backbone
    return holder


def _ids(n=4, length=10):
    return torch.randint(1, 100, (n, length), generator=torch.Generator().manual_seed(3))


def _gated_forward_gradients(bert, ids):
    """∂L/∂ξ of explicit gates ξ = 1 on every head's context and every FFN unit's activation (the definition)."""
    head_gates = [torch.ones(4, requires_grad=True) for _ in bert.encoder.layer]
    ffn_gates = [torch.ones(64, requires_grad=True) for _ in bert.encoder.layer]
    handles = []
    for layer, hg, fg in zip(bert.encoder.layer, head_gates, ffn_gates):
        handles.append(layer.attention.self.register_forward_hook(lambda m, a, out, g=hg: (out[0] * g.repeat_interleave(8), *out[1:])))
        handles.append(layer.intermediate.register_forward_hook(lambda m, a, out, g=fg: out * g))
    loss = bert(ids).last_hidden_state.pow(2).mean()
    loss.backward()
    for h in handles:
        h.remove()
    return [g.grad for g in head_gates], [g.grad for g in ffn_gates]


def test_gate_gradient_equals_the_gradient_of_explicit_gates(bert_dir):
    bert, ids = _bert(bert_dir), _ids()
    heads_grad, ffn_grad = _gated_forward_gradients(bert, ids)  # also fills the weights' .grad (gates are 1)
    holder = _holder(bert.encoder)
    for unit, include, exclude, expected in (("heads", HEADS, None, heads_grad), ("neurons", FFN, "attention", ffn_grad)):
        cb = PruningCallback(criterion=GateGradient(unit=unit), scope="body", include=include, exclude=exclude)
        cb.attach(holder)
        cb.criterion.on_gradients(cb.targets)
        for group, want in zip(cb.groups, expected):
            assert torch.allclose(cb.criterion.group_scores(group), want.abs(), rtol=1e-4, atol=1e-9), unit


def test_gate_gradient_pruning_exports_equal_to_the_masked_model(bert_dir):
    bert, ids = _bert(bert_dir), _ids()
    holder = _holder(bert.encoder)
    heads = PruningCallback(criterion=GateGradient("heads"), scope="body", include=HEADS)
    ffn = PruningCallback(criterion=GateGradient("neurons"), scope="body", include=FFN, exclude="attention")
    heads.attach(holder)
    ffn.attach(holder)
    opt = torch.optim.SGD(bert.encoder.parameters(), lr=1e-2)
    for step in range(3):  # importance accumulates over training steps, read before each optimizer step
        opt.zero_grad()
        bert(_ids(4, 10 + step)).last_hidden_state.pow(2).mean().backward()
        heads.criterion.on_gradients(heads.targets)
        ffn.criterion.on_gradients(ffn.targets)
        opt.step()
    expected_heads = [set(torch.topk(heads.criterion.group_scores(g), 2, largest=False).indices.tolist()) for g in heads.groups]
    heads.update_masks(0.5)
    ffn.update_masks(0.5)
    layer0 = bert.encoder.layer[0].attention.self
    pruned0 = {h for h in range(4) if float(layer0.query.weight_mask[h * 8 : (h + 1) * 8].abs().sum()) == 0}
    assert pruned0 == expected_heads[0]  # the least important heads went
    with torch.no_grad():
        masked = bert(ids).last_hidden_state
        removed = compact(holder)
        exported = bert(ids).last_hidden_state
    assert removed == {"heads": 4, "neurons": 64}
    assert (layer0.num_attention_heads, layer0.all_head_size, layer0.query.out_features) == (2, 16, 16)
    assert bert.encoder.layer[1].intermediate.dense.out_features == 32 and bert.encoder.layer[1].output.dense.in_features == 32
    assert float((masked - exported).abs().max()) <= 1e-5


def test_gate_gradient_without_gradients_is_one_line(bert_dir):
    bert = _bert(bert_dir)
    cb = PruningCallback(criterion=GateGradient("heads"), scope="body", include=HEADS)
    cb.attach(_holder(bert.encoder))
    with pytest.raises(ConfigError) as err:
        cb.update_masks(0.5)
    assert str(err.value).startswith("strategy.pruning.criterion: ") and "\n" not in str(err.value)


def test_remove_heads_equals_zeroed_heads_and_checks_counts(bert_dir):
    bert, ids = _bert(bert_dir), _ids()
    zeroed = copy.deepcopy(bert)
    with torch.no_grad():
        for layer, heads in ((0, [1, 3]), (1, [0])):
            attn = zeroed.encoder.layer[layer].attention.self
            for h in heads:
                for lin in (attn.query, attn.key, attn.value):
                    lin.weight[h * 8 : (h + 1) * 8] = 0
                    lin.bias[h * 8 : (h + 1) * 8] = 0
        reference = zeroed(ids).last_hidden_state
        assert remove_heads(bert, {0: [1, 3], 1: [0]}) == 3
        assert bert.encoder.layer[0].attention.self.num_attention_heads == 2 and bert.encoder.layer[1].attention.self.all_head_size == 24
        assert float((bert(ids).last_hidden_state - reference).abs().max()) <= 1e-5
    shapes = [tuple(p.shape) for p in bert.parameters()]
    for bad, words in (({1: [0, 1, 2]}, "with none"), ({0: [5]}, "has 2 heads"), ({7: [0]}, "does not exist")):
        with pytest.raises(ConfigError) as err:
            remove_heads(bert, bad)
        assert str(err.value).startswith("heads: ") and words in str(err.value) and "\n" not in str(err.value)
    assert [tuple(p.shape) for p in bert.parameters()] == shapes  # nothing changed by a refused request


def test_pruning_more_heads_than_a_layer_has_is_one_line(bert_dir):
    bert = _bert(bert_dir)
    cb = PruningCallback(criterion=Heads(), scope="body", include=HEADS)
    cb.attach(_holder(bert.encoder))
    with pytest.raises(ConfigError) as err:
        cb.update_masks(0.9)  # round(0.9 x 4) = 4: every head of a layer
    msg = str(err.value)
    assert msg.startswith("strategy.pruning.final_sparsity: ") and "all 4 heads" in msg and "at most 0.75" in msg and "\n" not in msg


def test_pruning_under_lora_acts_on_base_weights_and_survives_merging(bert_dir):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(4)
    peft_model = get_peft_model(_bert(bert_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "intermediate.dense", "output.dense"], init_lora_weights=False))
    bert, ids = peft_model.base_model.model.eval(), _ids()
    bert.encoder.out_dim = 32
    holder = _holder(PeftBody(bert.encoder, ["t"], [p for p in bert.encoder.parameters() if p.requires_grad]))  # the body says where the adapters are
    adapters = holder.body.adapter_layers()
    groups = find_groups(holder, "heads", adapters) + find_groups(holder, "neurons", adapters)
    assert groups and all(n.endswith(".base_layer") for g in groups for n, _ in g.producers if "query" in n or "intermediate" in n)
    # no exclude: peft's lora_A/lora_B layers are never prunable; attach gates the adapters' updates of pruned units
    heads = PruningCallback(criterion=Heads(), scope="body", include=HEADS)
    ffn = PruningCallback(criterion=Neurons(), scope="body", include=FFN, exclude="attention")
    for cb in (heads, ffn):
        cb.attach(holder)
        assert not any("lora_" in t.name for t in cb.targets)
        cb.update_masks(0.5)
    lora_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    seen = {}
    probe = bert.encoder.layer[0].attention.self.query.register_forward_hook(lambda m, a, out: seen.update(query=out))
    with torch.no_grad():
        masked = bert(ids).last_hidden_state
        probe.remove()
        dead = bert.encoder.layer[0].attention.self.query.base_layer.weight_mask.eq(0).all(1)
        # the adapter (init_lora_weights=False: non-zero B·A) adds nothing to pruned units' rows
        assert bool(dead.any()) and float(seen["query"][..., dead].abs().max()) == 0.0
        assert float(seen["query"][..., ~dead].abs().max()) > 0
        assert merge_adapters(holder) == 2 * 5
        query = bert.encoder.layer[0].attention.self.query
        assert isinstance(query, nn.Linear) and torch.equal(query.weight * (1 - query.weight_mask), torch.zeros_like(query.weight))
        merged = bert(ids).last_hidden_state
        removed = compact(holder)
        exported = bert(ids).last_hidden_state
    assert lora_before and removed == {"heads": 4, "neurons": 64}
    assert float((masked - merged).abs().max()) <= 1e-5
    assert float((masked - exported).abs().max()) <= 1e-5
