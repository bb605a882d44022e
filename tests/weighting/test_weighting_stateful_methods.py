"""Nash-MTL, ExcessMTL, CR-MOGM, MoDo and SDMGrad on small known values: defining properties, state
that survives a checkpoint (a fresh method loaded from the state dict continues identically),
subsets of tasks, and bad config values naming their key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_matrices import AGREE, CONFLICT, made

from peftlab.errors import ConfigError
from peftlab.weighting import CRMOGMWeighting, ExcessMTLWeighting, MGDAWeighting, MoDoWeighting, NashMTLWeighting, SDMGradWeighting

ALL = [
    (NashMTLWeighting, {}),
    (ExcessMTLWeighting, {"n_warmup_steps": 1}),
    (CRMOGMWeighting, {}),
    (MoDoWeighting, {}),
    (SDMGradWeighting, {}),
]


def test_nash_mtl_without_a_norm_cap_is_the_bargaining_solution():
    """α_i (Aα)_i = 1 with A the Gram matrix (the paper's optimality condition), to the solver's stop rule 1e-3."""
    m = made(NashMTLWeighting, max_norm=0.0)
    m.combine_gradients(CONFLICT.clone())
    alpha = np.array(list(m.alpha().values()))
    gram = (CONFLICT @ CONFLICT.T).numpy()
    assert (alpha > 0).all() and np.allclose(alpha * (gram @ alpha), 1.0, atol=1e-3)


def test_nash_mtl_caps_the_update_norm_and_reuses_alpha_between_updates():
    m = made(NashMTLWeighting, max_norm=0.1, update_weights_every=2)
    d = m.combine_gradients(CONFLICT.clone())
    assert float(d.norm()) == pytest.approx(0.1, rel=1e-9)
    first = m.prev_alpha.clone()
    m.combine_gradients(CONFLICT * 5)  # call 2 of 2: α reused (then capped for these rows)
    assert torch.equal(m.prev_alpha, first) and int(m.calls) == 2


def test_excess_mtl_moves_weight_to_the_task_with_the_larger_excess_risk():
    m = made(ExcessMTLWeighting)
    m.combine_gradients(AGREE.clone())  # baseline
    rows = AGREE.clone()
    rows[2] *= 4  # task c's gradient grows: its excess risk relative to its baseline grows most
    m.combine_gradients(rows)
    alpha = m.alpha()
    assert alpha["c"] > alpha["a"] and alpha["c"] > alpha["b"] and sum(alpha.values()) == pytest.approx(3.0)


def test_excess_mtl_keeps_uniform_weights_during_warmup():
    m = made(ExcessMTLWeighting, n_warmup_steps=2)
    for _ in range(2):
        assert torch.allclose(m.combine_gradients(CONFLICT.clone()), CONFLICT.sum(0))
    assert torch.isnan(m.baseline).all() and m.seen.tolist() == [2, 2, 2]
    m.combine_gradients(CONFLICT.clone())
    assert torch.allclose(m.baseline, m.warmup_sum / 2)


def test_cr_mogm_smooths_the_inner_weights():
    inner = len(CONFLICT) * MGDAWeighting().coefficients((CONFLICT @ CONFLICT.T).numpy()) / 3
    inner_agree = MGDAWeighting().coefficients((AGREE @ AGREE.T).numpy())
    m = made(CRMOGMWeighting, alpha=0.75)
    assert torch.allclose(m.combine_gradients(CONFLICT.clone()), torch.as_tensor(inner) @ CONFLICT)  # λ_0 = λ̂_1
    m.combine_gradients(AGREE.clone())
    assert np.allclose(m.lambd.numpy(), 0.75 * inner + 0.25 * inner_agree)
    frozen = made(CRMOGMWeighting, alpha=1.0)
    frozen.combine_gradients(CONFLICT.clone())
    assert torch.allclose(frozen.combine_gradients(AGREE.clone()), torch.as_tensor(inner) @ AGREE)


def test_modo_and_sdmgrad_keep_their_weights_on_the_simplex():
    modo, sdm = made(MoDoWeighting, gamma=2.0), made(SDMGradWeighting)
    for k in range(3):
        modo.combine_gradients(CONFLICT * (1 + k))
        sdm.combine_gradients(CONFLICT * (1 + k))
        for w in (modo.lambd, sdm.w):
            assert (w >= 0).all() and float(w.sum()) == pytest.approx(1.0)
    assert sum(modo.alpha().values()) == pytest.approx(3.0) and sum(sdm.alpha().values()) == pytest.approx(3.0)


@pytest.mark.parametrize("cls", [MoDoWeighting, SDMGradWeighting])
def test_a_batch_of_tasks_holding_no_weight_stays_finite(cls):
    """The projection can zero a task's weight; a later batch of that task alone was 0/0 = NaN,
    written into the state for good (review). Now: finite, and a later joint step too."""
    m = made(cls, **({"gamma": 1.0} if cls is MoDoWeighting else {"lr": 10.0}))
    rows = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]], dtype=torch.float64)
    m.combine_gradients(rows)
    state = m.lambd if cls is MoDoWeighting else m.w
    zeroed = int(torch.argmin(state))
    assert float(state[zeroed]) == 0.0  # the premise: one task holds no weight
    alone = m.combine_gradients(rows[zeroed : zeroed + 1], [zeroed])
    assert torch.isfinite(alone).all() and torch.isfinite(state).all() and float(state.sum()) == pytest.approx(1.0)
    assert torch.isfinite(m.combine_gradients(rows)).all()


def test_sdmgrad_without_preference_finds_a_common_descent_direction():
    """λ = 0 and a small inner step: the inner solve converges to MGDA's min-norm weights."""
    d = made(SDMGradWeighting, lambda_=0.0, lr=0.2, momentum=0.0, n_iter=2000).combine_gradients(CONFLICT.clone())
    want = MGDAWeighting().coefficients((CONFLICT @ CONFLICT.T).numpy())
    assert torch.allclose(d, torch.as_tensor(want) @ CONFLICT, atol=1e-6)
    assert (CONFLICT @ d > -1e-9).all()  # a common descent direction: no task's loss goes up


@pytest.mark.parametrize("cls,kw", ALL, ids=lambda v: getattr(v, "__name__", ""))
def test_state_resumes_exactly_and_a_subset_moves_only_its_tasks(cls, kw):
    first = made(cls, **kw)
    first.combine_gradients(CONFLICT.clone())
    before = {k: v.clone() for k, v in first.state_dict().items()}
    first.combine_gradients(CONFLICT[[0, 2]] * 2, present=[0, 2])
    moved = [k for k, v in first.state_dict().items() if v.ndim >= 1 and len(v) == 3 and not torch.allclose(v[1], before[k][1], rtol=0, atol=0, equal_nan=True) and k != "last_alpha"]
    assert moved == [], moved  # task b was absent: its state is untouched
    resumed = made(cls, **kw)
    resumed.load_state_dict(first.state_dict())
    for k in range(2):
        assert torch.equal(first.combine_gradients(AGREE * (k + 1)), resumed.combine_gradients(AGREE * (k + 1)))


@pytest.mark.parametrize(
    "make,key",
    [
        (lambda: NashMTLWeighting(max_norm=-1.0), "strategy.weighting.max_norm"),
        (lambda: NashMTLWeighting(update_weights_every=0), "strategy.weighting.update_weights_every"),
        (lambda: NashMTLWeighting(optim_niter=1.5), "strategy.weighting.optim_niter"),
        (lambda: ExcessMTLWeighting(robust_step_size=0.0), "strategy.weighting.robust_step_size"),
        (lambda: ExcessMTLWeighting(n_warmup_steps=-1), "strategy.weighting.n_warmup_steps"),
        (lambda: ExcessMTLWeighting(mode="representation"), "strategy.weighting.mode"),
        (lambda: CRMOGMWeighting(alpha=1.5), "strategy.weighting.alpha"),
        (lambda: CRMOGMWeighting(inner="pcgrad"), "strategy.weighting.inner"),
        (lambda: MoDoWeighting(gamma=0.0), "strategy.weighting.gamma"),
        (lambda: MoDoWeighting(rho=-0.1), "strategy.weighting.rho"),
        (lambda: SDMGradWeighting(lr=0.0), "strategy.weighting.lr"),
        (lambda: SDMGradWeighting(momentum=1.0), "strategy.weighting.momentum"),
        (lambda: SDMGradWeighting(n_iter=0), "strategy.weighting.n_iter"),
        (lambda: SDMGradWeighting(lambda_=-1.0), "strategy.weighting.lambda_"),
    ],
)
def test_bad_values_name_their_key(make, key):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
