"""Criteria: agreement with torch.nn.utils.prune, exclusions, movement direction, random seeding, heads."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from peftlab.callbacks.pruning import PruningCallback
from peftlab.errors import ConfigError
from peftlab.pruning.compaction import compact
from peftlab.pruning.criteria import GlobalMagnitude, Heads, Movement, Neurons, Random
from peftlab.pruning.masks import get_mask
from pruning_helpers import Net, one_thread  # noqa: F401


@pytest.mark.parametrize("amount", [0.3, 0.77])
def test_global_magnitude_equals_torch_global_unstructured(amount):
    net, ref = Net(), Net()
    cb = PruningCallback(criterion=GlobalMagnitude(), scope="body")
    cb.attach(net)
    cb.update_masks(amount)
    params = [(m, "weight") for m in ref.body if isinstance(m, nn.Linear)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for t, (m, _) in zip(cb.targets, params):
        assert torch.equal(get_mask(t.module, "weight"), m.weight_mask)
        assert torch.equal(t.tensor, m.weight)


def test_excluded_parameters_stay_dense():
    net = Net()
    heads_before, biases_before = net.heads.weight.clone(), [m.bias.clone() for m in net.body if isinstance(m, nn.Linear)]
    cb = PruningCallback(scope="body", exclude=r"body\.2\.")
    cb.attach(net)
    cb.update_masks(0.9)
    assert float((net.body[0].weight == 0).float().mean()) == pytest.approx(0.9, abs=1e-3)
    assert int((net.body[2].weight == 0).sum()) == 0  # excluded by name pattern
    assert torch.equal(net.heads.weight, heads_before)  # task heads are out of scope
    assert all(torch.equal(m.bias, b) for m, b in zip([m for m in net.body if isinstance(m, nn.Linear)], biases_before))


def test_pattern_matching_nothing_names_the_key():
    with pytest.raises(ConfigError) as err:
        PruningCallback(include="no_such_layer").attach(Net())
    assert err.value.key == "strategy.pruning.include" and "matches no parameter" in str(err.value)


def test_structured_on_unsupported_layer_names_the_key():
    conv = nn.Module()
    conv.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    with pytest.raises(ConfigError) as err:
        PruningCallback(criterion=Neurons(), scope="body").attach(conv)
    assert err.value.key == "strategy.pruning.criterion" and "Conv2d" in str(err.value)
    with pytest.raises(ConfigError) as err:
        PruningCallback(criterion=Heads(), scope="body").attach(Net())
    assert err.value.key == "strategy.pruning.criterion" and "self-attention" in str(err.value)


def test_movement_scores_move_the_right_way():
    """Weights the loss pulls toward zero get low scores and are pruned; weights pushed outward are kept."""
    torch.manual_seed(0)
    lin = nn.Linear(8, 1, bias=False)
    target = torch.tensor([[3.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]]))  # the right half is larger but useless
    net = nn.Module()
    net.body = nn.Sequential(lin)
    crit = Movement()
    cb = PruningCallback(criterion=crit, scope="body")
    cb.attach(net)
    opt = torch.optim.SGD(lin.parameters(), lr=0.02)
    for _ in range(50):
        x = torch.randn(64, 8)
        loss = ((lin(x) - x @ target.t()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        crit.on_gradients(cb.targets)
        opt.step()
    scores = crit.accumulated[0][0]
    assert bool((scores[:4] > 0).all()) and bool((scores[4:] < 0).all())
    cb.update_masks(0.5)
    assert get_mask(lin, "weight")[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # magnitude would prune the other half


def test_random_masks_depend_only_on_seed_and_step():
    a, b = Net(), copy.deepcopy(Net())
    for net in (a, b):
        cb = PruningCallback(criterion=Random(seed=3), scope="body")
        cb.attach(net)
        cb.update_masks(0.5, step=40)
    assert all(torch.equal(get_mask(x, "weight"), get_mask(y, "weight")) for x, y in zip(a.body[::2], b.body[::2]))


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=32)
    bert = BertModel(cfg).eval()
    holder = nn.Module()
    holder.body = bert.encoder
    return bert, holder


def test_heads_and_ffn_pruning_on_tiny_bert_export_equivalent():
    bert, holder = _tiny_bert()
    ids = torch.randint(0, 50, (3, 10))
    heads = PruningCallback(criterion=Heads(), scope="body", include=r"attention\.(self\.(query|key|value)|output\.dense)")
    heads.attach(holder)
    heads.update_masks(0.5)
    ffn = PruningCallback(criterion=Neurons(), scope="body", include=r"(intermediate|output)\.dense\.weight$", exclude=r"attention")
    ffn.attach(holder)
    ffn.update_masks(0.5)
    assert heads.measured_sparsity() == 0.5 and ffn.measured_sparsity() == 0.5
    with torch.no_grad():
        masked = bert(ids).last_hidden_state
        before = sum(p.numel() for p in bert.parameters())
        removed = compact(holder)
        after = sum(p.numel() for p in bert.parameters())
        exported = bert(ids).last_hidden_state
    assert removed == {"heads": 4, "neurons": 64}  # 2 layers x 2 of 4 heads; 2 layers x 32 of 64 FFN units
    assert bert.encoder.layer[0].attention.self.query.out_features == 16
    assert bert.encoder.layer[0].intermediate.dense.out_features == 32
    assert after < before
    assert float((masked - exported).abs().max()) <= 1e-5


def test_lottery_ticket_rewinding_resets_survivors():
    from types import SimpleNamespace

    net = Net()
    cb = PruningCallback(scope="body", schedule="one_shot", start_step=5, final_sparsity=0.6, rewind_step=2)
    cb.attach(net)
    snapshot = None
    for step in range(1, 6):  # pruned (and rewound) at step 5
        with torch.no_grad():
            for m in net.body[::2]:
                m.weight.add_(0.01 * torch.randn_like(m.weight))  # stands in for optimizer steps
        if step == 2:
            snapshot = [m.weight.detach().clone() for m in net.body[::2]]
        cb.on_train_batch_end(SimpleNamespace(global_step=step, loggers=[], optimizers=[]), net, None, None, step)
    for m, w in zip(net.body[::2], snapshot):
        mask = get_mask(m, "weight")
        assert float((mask == 0).float().mean()) == pytest.approx(0.6, abs=1e-3)
        assert torch.equal(m.weight, w * mask)  # survivors back at their step-2 values
    assert PruningCallback().rewind_step is None  # off by default
