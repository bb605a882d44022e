"""MoCo on small known values: the tracked gradients and the simplex weights, state that survives a
checkpoint, subsets of tasks, and bad config values naming their key."""

from __future__ import annotations

import pytest
import torch

from peftlab.errors import ConfigError
from peftlab.weighting import MoCoWeighting

TASKS3 = ["a", "b", "c"]
ROWS = torch.tensor([[1.0, 0.0, 0.0], [-0.8, 0.6, 0.0], [0.1, -0.9, 0.4]], dtype=torch.float64)
LOSSES = dict(zip(TASKS3, torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)))


def made(**kw):
    m = MoCoWeighting(**kw)
    m.setup(TASKS3)
    return m


def test_moco_tracks_loss_scaled_unit_gradients_and_weights_on_the_simplex():
    m = made(beta=1.0, beta_sigma=0.0)  # β = 1: y is this step's ĝ_i = g_i/‖g_i‖ · L_i
    m.combine(LOSSES)
    d = m.combine_gradients(ROWS.clone())
    assert torch.allclose(m.tracked.norm(dim=1), torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64), rtol=1e-6)
    alpha = torch.tensor(list(m.alpha().values()), dtype=torch.float64)
    assert float(alpha.sum()) == pytest.approx(3.0) and (alpha > 0).all()
    assert torch.allclose(d, alpha @ m.tracked, rtol=1e-6)
    # one λ step from uniform: the task with the largest y·(Yᵀλ) (here c, the largest loss) loses weight
    assert alpha[2] < 1.0


def test_moco_state_resumes_exactly():
    first = made()
    for step in range(2):
        first.combine(LOSSES)
        first.combine_gradients(ROWS * (1 + step))
    resumed = made()
    resumed.load_state_dict(first.state_dict())
    outs = []
    for m in (first, resumed):
        m.combine(LOSSES)
        outs.append(m.combine_gradients(ROWS * 3))
    assert torch.equal(outs[0], outs[1]) and torch.equal(first.lambd, resumed.lambd)


def test_moco_moves_only_the_present_tasks_and_keeps_their_share():
    m = made()
    m.combine({"a": LOSSES["a"], "c": LOSSES["c"]})
    m.combine_gradients(ROWS[[0, 2]].clone(), present=[0, 2])
    assert m.tracked[1].abs().sum() == 0 and float(m.lambd[1]) == pytest.approx(1 / 3)
    assert float(m.lambd.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("kw,key", [({"gamma": -0.1}, "strategy.weighting.gamma"), ({"rho": float("inf")}, "strategy.weighting.rho"), ({"mode": "representation"}, "strategy.weighting.mode")])
def test_bad_values_name_their_key(kw, key):
    with pytest.raises(ConfigError) as info:
        MoCoWeighting(**kw)
    assert info.value.key == key
