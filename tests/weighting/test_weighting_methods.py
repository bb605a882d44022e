"""Each weighting method's combination step against a hand computation on small known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from peftlab.weighting import (
    CAGradWeighting,
    DWAWeighting,
    FAMOWeighting,
    FixedWeighting,
    GradNormWeighting,
    IMTLWeighting,
    MGDAWeighting,
    PCGradWeighting,
    RLWWeighting,
    UncertaintyWeighting,
)
from peftlab.weighting.mgda import min_norm_weights

TASKS2 = ["a", "b"]
TASKS3 = ["a", "b", "c"]


def made(cls, tasks, **kw):
    m = cls(**kw)
    m.setup(tasks)
    return m


def combined(method, grads):
    return method.combine_gradients(torch.tensor(grads, dtype=torch.float32))


def test_pcgrad_projects_two_conflicting_gradients():
    g1, g2 = [1.0, 0.0], [-1.0, 1.0]  # g1·g2 = −1 < 0
    # g1' = g1 − (−1/2) g2 = (0.5, 0.5);  g2' = g2 − (−1/1) g1 = (0, 1);  sum = (0.5, 1.5)
    d = combined(made(PCGradWeighting, TASKS2), [g1, g2])
    assert d.tolist() == pytest.approx([0.5, 1.5])


def test_pcgrad_leaves_agreeing_gradients_alone():
    d = combined(made(PCGradWeighting, TASKS2), [[1.0, 0.0], [1.0, 1.0]])
    assert d.tolist() == pytest.approx([2.0, 1.0])


def test_pcgrad_order_is_random_but_rank_independent():
    grads = np.random.default_rng(0).normal(size=(4, 6))
    gram = grads @ grads.T
    m1, m2 = made(PCGradWeighting, list("abcd"), seed=3), made(PCGradWeighting, list("abcd"), seed=3)
    seen = set()
    for _ in range(8):
        a1, a2 = m1.coefficients(gram), m2.coefficients(gram)
        assert np.array_equal(a1, a2)  # same seed and step → same order on every rank
        seen.add(tuple(np.round(a1, 8)))
        m1.on_optimizer_step(), m2.on_optimizer_step()
    assert len(seen) > 1  # the order changes from step to step


def test_mgda_min_norm_point_of_two_gradients():
    # hull of (1,0) and (0,1): min-norm point (0.5, 0.5);  α reported on the Σα = T scale
    d = combined(made(MGDAWeighting, TASKS2), [[1.0, 0.0], [0.0, 1.0]])
    assert d.tolist() == pytest.approx([1.0, 1.0])  # T × (0.5, 0.5)
    # hull of (1,0) and (1,1): the closest point to 0 is the vertex (1,0)
    assert min_norm_weights(np.array([[1.0, 1.0], [1.0, 2.0]])) == pytest.approx([1.0, 0.0])


def test_mgda_matches_a_brute_force_search_for_three_tasks():
    g = np.random.default_rng(1).normal(size=(3, 5))
    gram = g @ g.T
    w = min_norm_weights(gram)
    grid = [(a, b, 1 - a - b) for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1]
    brute = min(np.array(x) @ gram @ np.array(x) for x in grid)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert w @ gram @ w <= brute + 1e-9


def test_cagrad_with_c_zero_is_the_mean():
    grads = [[1.0, 2.0, 0.0], [-3.0, 1.0, 1.0], [0.5, 0.5, 4.0]]
    m = made(CAGradWeighting, TASKS3, c=0.0)
    d = combined(m, grads)
    assert d.tolist() == pytest.approx((3 * np.mean(grads, axis=0)).tolist(), abs=1e-6)  # T × mean
    assert m.alpha() == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})


def test_cagrad_moves_towards_the_worst_task_and_solves_its_subproblem():
    g = np.array([[1.0, 0.0], [-0.8, 0.3]])
    gram = g @ g.T
    m = made(CAGradWeighting, TASKS2, c=0.4)
    alpha = m.coefficients(gram)
    # reference: brute force the inner problem over the simplex, then the closed-form update
    g0 = g.mean(0)
    c = 0.4 * np.linalg.norm(g0)
    ws = np.linspace(0, 1, 100001)
    obj = [(w * g[0] + (1 - w) * g[1]) @ g0 + c * np.linalg.norm(w * g[0] + (1 - w) * g[1]) for w in ws]
    w = ws[int(np.argmin(obj))]
    gw = w * g[0] + (1 - w) * g[1]
    d_ref = (g0 + c / np.linalg.norm(gw) * gw) / (1 + 0.4**2)
    assert (alpha / 2) @ g == pytest.approx(d_ref, abs=1e-4)
    assert min((alpha / 2) @ g @ gi for gi in g) > min(g0 @ gi for gi in g)  # worst task improves more


def test_imtl_gives_equal_projections_on_unit_gradients():
    # g1 = (1,0), g2 = (0,2): d = α1 g1 + α2 g2 with d·u1 = d·u2 → α = (2/3, 1/3)
    m = made(IMTLWeighting, TASKS2)
    d = combined(m, [[1.0, 0.0], [0.0, 2.0]])
    assert d.tolist() == pytest.approx([2 * 2 / 3, 2 * 2 / 3])
    g = np.random.default_rng(2).normal(size=(3, 7))
    alpha = m.coefficients(g @ g.T)
    d = alpha @ g
    proj = [d @ gi / np.linalg.norm(gi) for gi in g]
    assert proj == pytest.approx([proj[0]] * 3) and alpha.sum() == pytest.approx(3.0)


def test_gradnorm_keeps_weights_positive_and_summing_to_t():
    torch.manual_seed(0)
    m = made(GradNormWeighting, TASKS3, asymmetry=1.5, w_lr=0.5)
    layer = torch.nn.Parameter(torch.randn(4, 4))
    x = torch.randn(8, 4)
    for step in range(40):
        h = x @ layer
        # task "a" has a 50× larger gradient than the others: GradNorm must shrink its weight
        losses = {"a": 50 * h[:, 0].pow(2).mean(), "b": h[:, 1].pow(2).mean() * (1 + step), "c": h[:, 2].pow(2).mean()}
        m.combine(losses, shared=[layer])
        m.on_optimizer_step()
        w = torch.tensor(list(m.alpha().values()))
        assert (w > 0).all() and float(w.sum()) == pytest.approx(3.0, abs=1e-5)
    assert m.alpha()["a"] < 0.5 < m.alpha()["b"]


def test_uncertainty_weights_stay_positive_and_bounded_while_the_naive_rule_collapses():
    losses = torch.tensor([0.5, 2.0, 8.0])
    m = made(UncertaintyWeighting, TASKS3)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    naive = torch.ones(3, requires_grad=True)
    naive_opt = torch.optim.SGD([naive], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        m.combine(dict(zip(TASKS3, losses))).backward()
        opt.step()
        naive_opt.zero_grad()
        (naive * losses).sum().backward()  # L = Σ α_i L_i, α_i ← α_i − η L_i
        naive_opt.step()
    alpha = torch.tensor(list(m.alpha().values()))
    assert alpha.tolist() == pytest.approx((1 / losses).tolist(), rel=1e-3)  # optimum α = 1/L: positive, bounded
    assert (naive < -20).all()  # the naive rule drives every weight down without bound


def test_dwa_uniform_for_two_epochs_then_softmax_of_loss_ratios():
    m = made(DWAWeighting, TASKS2, temperature=2.0)
    epoch_losses = [[1.0, 1.0], [0.5, 0.9]]
    for values in epoch_losses:
        for _ in range(3):
            m.combine(dict(zip(TASKS2, torch.tensor(values))))
        assert m.alpha() == {"a": 1.0, "b": 1.0}
        m.on_epoch_end()
    r = np.array([0.5 / 1.0, 0.9 / 1.0])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    assert list(m.alpha().values()) == pytest.approx(expected.tolist())
    loss = m.combine({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    assert float(loss) == pytest.approx(expected.sum())


def test_rlw_draws_softmax_of_gaussians_once_per_optimizer_step():
    m = made(RLWWeighting, TASKS3, seed=7)
    first = m.alpha()
    assert m.alpha() == first  # micro-batches of one step share the draw
    z = torch.randn(3, generator=torch.Generator().manual_seed(7 * 1_000_003))
    assert list(first.values()) == pytest.approx((3 * torch.softmax(z, 0)).tolist())
    m.on_optimizer_step()
    assert m.alpha() != first and sum(m.alpha().values()) == pytest.approx(3.0)


def test_famo_weights_and_logit_update_by_hand():
    m = made(FAMOWeighting, TASKS2, w_lr=0.1, gamma=0.0)
    losses = {"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(4.0, requires_grad=True)}
    loss = m.combine(losses)
    # z uniform → α_i ∝ 1/L_i, scaled to Σα = T: (1.6, 0.4)
    assert list(m.alpha().values()) == pytest.approx([1.6, 0.4])
    assert float(loss) == pytest.approx(1.6 * 1 + 0.4 * 4)
    m.on_optimizer_step()  # first window: no "before" yet → no update
    assert m.logits.value.tolist() == [0.0, 0.0]
    m.combine({"a": torch.tensor(0.5), "b": torch.tensor(4.0)})  # task a fell, b did not
    m.on_optimizer_step()
    # δ = (log 1 − log 0.5, 0); ∇_w = J_softmax δ = (+, −)·δ_a/4; Adam's first step moves by lr·sign
    assert m.logits.value.tolist() == pytest.approx([-0.1, 0.1], abs=1e-6)  # the task that improves loses weight


def test_fixed_normalize_rescales_to_t():
    m = made(FixedWeighting, TASKS3, alpha=[2.0, 1.0, 1.0], normalize=True)
    assert list(m.alpha().values()) == pytest.approx([1.5, 0.75, 0.75])
