"""Wanda and SparseGPT against their papers' formulas, computed by hand in the test."""

import copy

import pytest
import torch
from torch import nn

from peftlab.callbacks.pruning import PruningCallback
from peftlab.pruning.criteria import Magnitude, SparseGPT, Wanda
from peftlab.pruning.criteria.sparsegpt import sparsegpt_prune
from peftlab.pruning.masks import get_mask
from pruning_helpers import Net, one_thread  # noqa: F401


def batches(n=4, rows=32, width=16, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, width, generator=gen) * torch.linspace(0.1, 3, width) for _ in range(n)]


def pruned(criterion, sparsity=0.5, net=None):
    net = net or Net()
    cb = PruningCallback(criterion=criterion, scope="body", final_sparsity=sparsity, schedule="one_shot")
    cb.attach(net)
    if criterion.needs_calibration:
        criterion.calibrate_with(lambda b: net(b), batches())
    cb.update_masks(sparsity)
    return net, cb


def linear_inputs(dense, layer_index, data):
    """The input of body[layer_index] on ``data`` through ``dense``'s (already pruned) layers before it."""
    x = torch.cat(data)
    return dense.body[:layer_index](x) if layer_index else x


def test_wanda_mask_equals_the_papers_formula_by_hand():
    net, _ = pruned(Wanda())
    ref = Net()
    data = batches()
    for i, layer in [(0, ref.body[0]), (2, ref.body[2])]:
        X = linear_inputs(ref, i, data)  # inputs through the earlier layer, already pruned by hand
        W = layer.weight.detach()
        score = W.abs() * torch.sqrt((X**2).sum(0))  # S_ij = |W_ij| * ||X_j||_2
        keep = torch.ones_like(W)
        k = W.shape[1] // 2
        for r in range(W.shape[0]):  # each output row loses its k lowest scores
            keep[r, score[r].argsort()[:k]] = 0
        assert torch.equal(get_mask(net.body[i], "weight"), keep)
        with torch.no_grad():
            layer.weight.mul_(keep)


def test_wanda_keeps_each_row_at_the_sparsity_and_n_m_exact():
    net, _ = pruned(Wanda())
    for i in (0, 2):
        assert ((net.body[i].weight == 0).sum(1) == net.body[i].weight.shape[1] // 2).all()
    net, cb = pruned(Wanda(n_m=[2, 4]))
    for t in cb.targets:
        groups = (get_mask(t.module, "weight").reshape(-1, 4)).sum(1)
        assert (groups == 2).all()


def reconstruction_error(dense_layer, layer, X):
    return float(torch.linalg.norm(X @ dense_layer.weight.T - X @ layer.weight.T))


@pytest.mark.parametrize("n_m", [None, [2, 4]])
def test_sparsegpt_reconstructs_better_than_magnitude_on_every_layer(n_m):
    dense, data = Net(), batches()
    sgpt, _ = pruned(SparseGPT(n_m=n_m, blocksize=8))
    mag, _ = pruned(Magnitude(n_m=n_m))
    for i in (0, 2):
        X = linear_inputs(sgpt, i, data)  # the layer's inputs as SparseGPT saw them (earlier layers pruned)
        assert reconstruction_error(dense.body[i], sgpt.body[i], X) <= reconstruction_error(dense.body[i], mag.body[i], X)
        assert float((sgpt.body[i].weight == 0).float().mean()) == pytest.approx(0.5, abs=1e-6)
        if n_m:
            assert ((sgpt.body[i].weight != 0).reshape(-1, 4).sum(1) <= 2).all()


def straightforward_obs(W, H, keep, damp=0.01):
    """Textbook OBS with a fixed mask: one column at a time, the explicit inverse Hessian, the
    eliminated column removed from it after each step (no Cholesky, no blocks, no lazy updates)."""
    W = W.double().clone()
    H = H.double().clone() + damp * torch.diag(H).mean().double() * torch.eye(H.shape[0], dtype=torch.float64)
    Hinv = torch.linalg.inv(H)
    for i in range(W.shape[1]):
        q = W[:, i] * keep[:, i]
        err = (W[:, i] - q) / Hinv[i, i]
        W -= err.unsqueeze(1) * Hinv[i].unsqueeze(0)  # optimal update of every column, given column i's error
        W[:, i] = q
        Hinv = Hinv - torch.outer(Hinv[:, i], Hinv[i]) / Hinv[i, i]  # eliminate column i
    return W


def test_sparsegpt_matches_a_straightforward_obs_on_a_small_layer():
    torch.manual_seed(0)
    W = torch.randn(8, 24)
    X = torch.randn(200, 24) @ torch.randn(24, 24)  # correlated inputs: the update matters
    H = 2 * X.T @ X / X.shape[0]
    blocked, keep = sparsegpt_prune(W, H, 0.5, blocksize=5, dampening=0.01)
    ref = straightforward_obs(W, H, keep.double())
    rel = float(torch.linalg.norm(blocked.double() - ref) / torch.linalg.norm(ref))
    assert rel < 1e-4
    assert float((~keep).float().mean()) == pytest.approx(0.5, abs=0.03)
    fixed, keep2 = sparsegpt_prune(W, H, 0.5, blocksize=24, mask=keep.float())  # one block: same result
    assert torch.equal(keep2, keep) and float(torch.linalg.norm(fixed.double() - ref) / torch.linalg.norm(ref)) < 1e-4


def test_masks_stay_buffers_and_weights_zero():
    net, cb = pruned(SparseGPT())
    for t in cb.targets:
        mask = get_mask(t.module, "weight")
        assert "weight_mask" in dict(t.module.named_buffers())
        assert torch.equal(t.tensor * mask, t.tensor)
    sd = copy.deepcopy(net.state_dict())
    assert any(k.endswith("weight_mask") for k in sd)


def test_calibrated_criterion_prunes_through_the_callbacks_forward_order():
    # layers registered in the reverse of the order the forward calls them
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.ModuleDict({"b": nn.Linear(32, 32), "a": nn.Linear(16, 32)})
            self.heads = nn.Linear(32, 3)

        def forward(self, x):
            return self.heads(self.body["b"](torch.relu(self.body["a"](x))))

    net, cb = pruned(Wanda(), net=Reversed())
    assert all(float((t.tensor == 0).float().mean()) == 0.5 for t in cb.targets)


def test_sparsegpt_ramped_update_reaches_exactly_the_target():
    """Entries pruned earlier count among the k pruned now (lazy updates make them non-zero in later blocks)."""
    gen = torch.Generator().manual_seed(0)
    weight, x = torch.randn(32, 64, generator=gen), torch.randn(256, 64, generator=gen)
    hessian = x.T @ x
    first, keep = sparsegpt_prune(weight, hessian, 0.3, blocksize=16)
    _, keep2 = sparsegpt_prune(first, hessian, 0.5, blocksize=16, pruned=keep.float())
    assert (~keep2).float().mean().item() == 0.5
    assert not (keep2 & ~keep).any()  # nothing pruned before comes back
