"""Block-by-block calibration (the papers' scheme) against a hand-written reference, padding, chain detection and GPT-2's Conv1D."""

import pytest
import torch
from torch import nn

from hf_helpers import hf_module, save_tiny_bert, save_tiny_gpt2, text_batches
from peftlab.callbacks.calibration_batches import EvalMode, model_forward
from peftlab.callbacks.pruning import PruningCallback
from peftlab.pruning.blockwise import BlockInputs, find_blocks
from peftlab.pruning.criteria import Magnitude, SparseGPT, Wanda
from peftlab.pruning.masks import get_mask
from peftlab.sharing import FullSharing
from pruning_helpers import one_thread  # noqa: F401


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def prune(module, criterion, data, sparsity=0.5, **kwargs):
    cb = PruningCallback(criterion=criterion, scope="body", schedule="one_shot", final_sparsity=sparsity, **kwargs)
    cb.attach(module)
    cb.calibrate(data, module)
    with EvalMode(module):
        cb.update_masks(sparsity)
    return cb


def test_bert_blocks_are_found_and_chained(bert_dir):
    module = hf_module(bert_dir, FullSharing()).eval()
    linears = [m for m in module.body.modules() if isinstance(m, nn.Linear)]
    blocks = find_blocks(module, linears)
    assert len(blocks) == 2 and all(type(b).__name__ == "BertLayer" for b in blocks)
    cache = BlockInputs(blocks)
    with torch.no_grad():
        assert cache.capture(model_forward(module), text_batches(n=2))
    assert len(cache.hidden) == 2 and cache.hidden[0].shape == (16, 12, 32)


def reference_wanda(module, data, sparsity=0.5):
    """By hand, as prune_wanda does: block after block, the inputs of the block's linears from a full
    forward with the earlier blocks pruned (this block dense), padded positions dropped, |W|·‖X‖ per row."""
    run = model_forward(module)
    layers = module.body.backbone.model.encoder.layer if hasattr(module.body.backbone, "model") else None
    layers = layers or next(m for m in module.modules() if isinstance(m, nn.ModuleList) and len(m) == 2)
    expected = {}
    for block in layers:
        linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
        sq = {id(m): torch.zeros(m.in_features) for m in linears}
        handles, current = [], {}
        for m in linears:

            def hook(mod, args):
                x = args[0][current["mask"].bool()]  # [real tokens, in]
                sq[id(mod)] += (x * x).sum(0)

            handles.append(m.register_forward_pre_hook(hook))
        with torch.no_grad():
            for batch in data:
                current["mask"] = batch["inputs"]["attention_mask"]
                run(batch)
        for h in handles:
            h.remove()
        for m in linears:
            score = m.weight.detach().abs() * sq[id(m)].sqrt()
            keep = torch.ones_like(score)
            keep.scatter_(1, score.argsort(dim=1)[:, : int(round(sparsity * m.in_features))], 0.0)
            expected[id(m)] = keep
            with torch.no_grad():
                m.weight.mul_(keep)
    return expected


def test_blockwise_wanda_equals_the_reference_order_by_hand(bert_dir):
    data = text_batches(n=3)
    module = hf_module(bert_dir, FullSharing()).eval()
    cb = prune(module, Wanda(), data, exclude="pooler")
    ref_module = hf_module(bert_dir, FullSharing()).eval()
    expected = reference_wanda(ref_module, data)
    for t in cb.targets:
        assert torch.equal(get_mask(t.module, "weight"), expected[id(dict(ref_module.named_modules())[t.name.rsplit(".", 1)[0]])]), t.name


def test_padded_positions_do_not_change_the_masks(bert_dir):
    data = text_batches(n=2)
    noisy = []
    for batch in text_batches(n=2):  # same batches, other token ids where attention_mask is 0
        ids, mask = batch["inputs"]["input_ids"], batch["inputs"]["attention_mask"]
        noisy.append({**batch, "inputs": {"input_ids": torch.where(mask.bool(), ids, torch.full_like(ids, 7)), "attention_mask": mask}})
    masks = []
    for batches in (data, noisy):
        cb = prune(hf_module(bert_dir, FullSharing()), SparseGPT(blocksize=16), batches)
        masks.append([get_mask(t.module, "weight").clone() for t in cb.targets])
    assert all(torch.equal(a, b) for a, b in zip(*masks))


class Parallel(nn.Module):
    """Two branches held in a ModuleList but not chained (both read the input): layer by layer applies."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.ModuleList([nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16)) for _ in range(2)])

    def forward(self, x):
        return self.body[0](x) + self.body[1](x)


def test_a_module_list_that_is_not_a_chain_goes_layer_by_layer():
    gen = torch.Generator().manual_seed(0)
    data = [torch.randn(32, 16, generator=gen) for _ in range(3)]
    results = []
    for with_model in (True, False):
        net = Parallel()
        crit = SparseGPT(blocksize=8)
        cb = PruningCallback(criterion=crit, scope="body", schedule="one_shot", final_sparsity=0.5)
        cb.attach(net)
        crit.calibrate_with(lambda b: net(b), data, net if with_model else None)
        cb.update_masks(0.5)
        results.append([t.tensor.detach().clone() for t in cb.targets])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def gpt2_targets(cb):
    return [t for t in cb.targets if type(t.module).__name__ == "Conv1D"]


@pytest.mark.parametrize("criterion", [Wanda(n_m=[2, 4]), SparseGPT(n_m=[2, 4], blocksize=16), Magnitude(n_m=[2, 4])], ids=["wanda", "sparsegpt", "magnitude"])
def test_gpt2_conv1d_is_2_of_4_along_its_input_axis(gpt2_dir, criterion):
    module = hf_module(gpt2_dir, FullSharing(), pooling="mean")
    cb = prune(module, criterion, text_batches(n=2), module_types=["Linear", "Conv1D"])
    targets = gpt2_targets(cb)
    assert len(targets) == 4 * 2  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    for t in targets:
        kept = get_mask(t.module, "weight").t().reshape(-1, 4).sum(1)  # weight [in, out]: groups of 4 inputs per output
        assert (kept == 2).all(), t.name
        assert ((t.tensor.t() != 0).reshape(-1, 4).sum(1) <= 2).all()
    out = module.eval()(text_batches(n=1)[0]["inputs"])
    assert all(torch.isfinite(v).all() for v in out.values())


def test_gpt2_wanda_rows_are_outputs(gpt2_dir):
    module = hf_module(gpt2_dir, FullSharing(), pooling="mean")
    cb = prune(module, Wanda(), text_batches(n=2), module_types=["Conv1D"])
    for t in gpt2_targets(cb):
        per_output = (t.tensor == 0).sum(0)  # each output (a column of [in, out]) loses half its inputs
        assert (per_output == t.tensor.shape[0] // 2).all(), t.name


def test_gpt2_sparsegpt_beats_magnitude_on_the_outputs(gpt2_dir):
    batch = text_batches(n=1, seed=5)[0]["inputs"]

    def features(module):
        with torch.no_grad():
            return torch.cat([v.flatten() for v in module.eval().body(**batch).values()])

    ref = features(hf_module(gpt2_dir, FullSharing(), pooling="mean"))
    errors = {}
    for name, criterion in [("sparsegpt", SparseGPT(blocksize=16)), ("magnitude", Magnitude())]:
        module = hf_module(gpt2_dir, FullSharing(), pooling="mean")
        prune(module, criterion, text_batches(n=3), module_types=["Conv1D"])
        errors[name] = float(torch.linalg.norm(features(module) - ref))
    assert errors["sparsegpt"] < errors["magnitude"]


def test_a_layer_after_the_chain_sees_the_pruned_chains_outputs(bert_dir):
    """The pooler is scored from the replayed chain outputs: equal to its inputs in a full forward of the pruned encoder."""
    data = text_batches(n=3)
    module = hf_module(bert_dir, FullSharing()).eval()
    cb = prune(module, Wanda(), data)
    pooler = next(t for t in cb.targets if "pooler" in t.name).module
    sq = torch.zeros(pooler.in_features)
    handle = pooler.register_forward_pre_hook(lambda _m, args: sq.add_((args[0] ** 2).sum(0)))
    run = model_forward(module)
    with torch.no_grad():
        for batch in data:
            run(batch)
    handle.remove()
    mask = get_mask(pooler, "weight")
    score = pooler.weight.detach().abs() * sq.sqrt()
    score[mask == 0] = float("-inf")  # (the pruned weights are zero now; recompute the ranking among all)
    keep = torch.ones_like(score)
    keep.scatter_(1, score.argsort(dim=1)[:, : pooler.in_features // 2], 0.0)
    assert torch.equal(mask, keep)


def test_a_body_that_reorders_rows_by_task_keeps_padded_positions():
    """task_lora sorts a mixed batch's rows by task before its layers: the batch's padding mask no longer
    lines up (review), so such a model's calibration keeps every position instead of dropping the wrong ones."""
    from torch import nn

    from peftlab.pruning.calibration import record_inputs
    from peftlab.pruning.criteria.wanda import Wanda

    class Routed(nn.Module):
        routes_by_task = True

    layer = nn.Linear(4, 2)
    batch = {"inputs": {"attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}, "x": torch.randn(2, 3, 4)}
    counts = [record_inputs(layer, lambda b: layer(b["x"]), [batch], lambda x: None, use_mask=use) for use in (True, False)]
    assert counts == [3, 6]
    plain, routed = Wanda(), Wanda()
    plain.calibrate_with(lambda b: None, [batch], nn.Sequential(layer))
    routed.calibrate_with(lambda b: None, [batch], nn.Sequential(layer, Routed()))
    assert (plain.routed, routed.routed) == (False, True)
