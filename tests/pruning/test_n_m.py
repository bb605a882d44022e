"""N:M semi-structured sparsity: the exact pattern, and one-line errors for settings it cannot follow."""

import pytest
import torch
from torch import nn

from peftlab.callbacks.pruning import PruningCallback
from peftlab.errors import ConfigError
from peftlab.pruning.criteria import GateGradient, GlobalMagnitude, Magnitude, Movement, Neurons, SparseGPT, Wanda
from peftlab.pruning.masks import get_mask
from peftlab.pruning.n_m import n_m_mask
from pruning_helpers import Net, one_thread  # noqa: F401


def test_n_m_mask_keeps_the_n_largest_of_every_m():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.7, 0.9, 0.1]])
    assert n_m_mask(scores, (2, 4)).tolist() == [[1, 0, 1, 0, 0, 1, 1, 0]]
    assert n_m_mask(scores, (2, 4), sparsity=0.25).tolist() == [[1, 0, 1, 1, 1, 1, 1, 0]]  # a schedule on its way: 3:4


@pytest.mark.parametrize("n_m", [[2, 4], [1, 4], [4, 8]])
def test_magnitude_n_m_pattern_is_exact_and_keeps_the_largest(n_m):
    n, m = n_m
    net = Net()
    cb = PruningCallback(criterion=Magnitude(n_m=n_m), final_sparsity=1 - n / m)
    dense = [t.tensor.detach().clone() for t in (cb.attach(net) or cb.targets)]
    cb.update_masks(1 - n / m)
    for t, w in zip(cb.targets, dense):
        groups = get_mask(t.module, "weight").reshape(-1, m)
        assert (groups.sum(1) == n).all()
        kept_min = torch.where(groups.bool(), w.abs().reshape(-1, m), torch.inf).min(1).values
        dropped_max = torch.where(groups.bool(), -torch.inf, w.abs().reshape(-1, m)).max(1).values
        assert (kept_min >= dropped_max).all()


def test_movement_n_m_and_a_cubic_ramp_stay_nested():
    net = Net()
    cb = PruningCallback(criterion=Movement(n_m=[2, 4]), final_sparsity=0.5)
    cb.attach(net)
    cb.criterion.accumulated = [torch.randn_like(t.tensor) for t in cb.targets]
    cb.update_masks(0.25)
    first = [get_mask(t.module, "weight").clone() for t in cb.targets]
    cb.update_masks(0.5)
    for t, f in zip(cb.targets, first):
        mask = get_mask(t.module, "weight")
        assert (mask.reshape(-1, 4).sum(1) == 2).all() and (mask <= f).all()


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: Wanda(n_m=[4, 4]), "strategy.pruning.criterion.n_m"),
        (lambda: SparseGPT(n_m=[3, 2]), "strategy.pruning.criterion.n_m"),
        (lambda: Magnitude(n_m=[2]), "strategy.pruning.criterion.n_m"),
        (lambda: Neurons(n_m=[2, 4]), "strategy.pruning.criterion.n_m"),
        (lambda: GateGradient(n_m=[2, 4]), "strategy.pruning.criterion.n_m"),
        (lambda: GlobalMagnitude(n_m=[2, 4]), "strategy.pruning.criterion.n_m"),
        (lambda: SparseGPT(n_m=[2, 4], blocksize=6), "strategy.pruning.criterion.blocksize"),
        (lambda: PruningCallback(criterion=Wanda(), calibration={"batches": 0}), "strategy.pruning.calibration.batches"),
        (lambda: PruningCallback(criterion=Wanda(n_m=[2, 4]), final_sparsity=0.7), "strategy.pruning.final_sparsity"),
        (lambda: PruningCallback(criterion=Wanda(n_m=[2, 6]), final_sparsity=2 / 3).attach(Net()), "strategy.pruning.criterion.n_m"),
    ],
    ids=["n_ge_m", "n_gt_m", "not_a_pair", "neurons", "heads_gradient", "global", "blocksize", "calibration_zero", "final_sparsity", "m_divides_width"],
)
def test_bad_settings_are_one_line_naming_the_key(make, key):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key and "\n" not in str(err.value)


def test_sparsegpt_refuses_a_conv_layer():
    conv = nn.Module()
    conv.body = nn.Sequential(nn.Conv1d(4, 8, 3))
    with pytest.raises(ConfigError) as err:
        PruningCallback(criterion=SparseGPT()).attach(conv)
    assert err.value.key == "strategy.pruning.module_types" and "Conv1d" in str(err.value)


def test_semi_structured_report_on_a_2_4_layer():
    from peftlab.pruning.semi_structured import semi_structured_report

    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    with torch.no_grad():
        layer.weight.mul_(torch.tensor([1.0, 0.0, 1.0, 0.0]).repeat(16))  # 2 of every 4 inputs kept
    report = semi_structured_report(torch.nn.Sequential(layer, torch.nn.Linear(64, 64)))
    assert report["layers"] == 1  # the dense second layer is not 2:4
    if torch.cuda.is_available():
        assert report["applied"] and report["speedup"] > 0
    else:
        assert not report["applied"] and "CUDA" in report["note"]
