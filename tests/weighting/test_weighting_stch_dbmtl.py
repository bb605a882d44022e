"""STCH and DB-MTL on small known values: defining properties, state that survives a checkpoint,
subsets of tasks, and bad config values naming their key."""

from __future__ import annotations

import pytest
import torch

from peftlab.errors import ConfigError
from peftlab.weighting import DBMTLWeighting, STCHWeighting

TASKS3 = ["a", "b", "c"]
ROWS = torch.tensor([[1.0, 0.0, 0.0], [-0.8, 0.6, 0.0], [0.1, -0.9, 0.4]], dtype=torch.float64)


def made(cls, tasks=TASKS3, **kw):
    m = cls(**kw)
    m.setup(tasks)
    return m


def loss_grads(method, values: dict[str, float]) -> dict[str, float]:
    """∂objective/∂L_i of one combination."""
    leaves = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in values.items()}
    method.combine(leaves).backward()
    return {n: float(t.grad) for n, t in leaves.items()}


def test_stch_warms_up_on_log_losses_then_weights_the_worst_relative_loss():
    m = made(STCHWeighting, mu=0.05, warmup_epochs=1)
    assert loss_grads(m, {"a": 0.5, "b": 2.0, "c": 4.0}) == pytest.approx({"a": 2.0, "b": 0.5, "c": 0.25})  # ∇Σ log L
    m.on_epoch_end()
    for values in ({"a": 1.0, "b": 2.0, "c": 4.0}, {"a": 3.0, "b": 2.0, "c": 4.0}):  # the nadir epoch: means 2, 2, 4
        loss_grads(m, values)
    m.on_epoch_end()
    assert m.nadir.tolist() == pytest.approx([2.0, 2.0, 4.0])
    # a's loss doubled relative to its nadir, b's and c's halved: with a small μ nearly all weight
    # goes to a, T·(1/L_a) (the gradient of T·log(L_a/z_a))
    grads = loss_grads(m, {"a": 4.0, "b": 1.0, "c": 2.0})
    assert grads["a"] == pytest.approx(3 / 4.0, rel=1e-6) and grads["b"] < 1e-9 and grads["c"] < 1e-9
    assert m.alpha() == pytest.approx(grads)


def test_stch_with_a_large_mu_is_the_log_loss_mean():
    m = made(STCHWeighting, mu=1e6, warmup_epochs=0)
    loss_grads(m, {"a": 1.0, "b": 1.0, "c": 1.0})
    m.on_epoch_end()  # nadir 1
    # softmax → 1/T, so α_i = T·(1/T)/L_i = 1/L_i
    assert loss_grads(m, {"a": 0.5, "b": 2.0, "c": 4.0}) == pytest.approx({"a": 2.0, "b": 0.5, "c": 0.25}, rel=1e-5)


def test_stch_state_resumes_exactly_mid_nadir_epoch():
    first = made(STCHWeighting, warmup_epochs=1)
    first.on_epoch_end()
    loss_grads(first, {"a": 1.0, "b": 2.0, "c": 3.0})
    resumed = made(STCHWeighting, warmup_epochs=1)
    resumed.load_state_dict(first.state_dict())
    for m in (first, resumed):
        loss_grads(m, {"a": 3.0, "b": 2.0, "c": 1.0})
        m.on_epoch_end()
    assert torch.equal(first.nadir, resumed.nadir) and resumed.nadir.tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert loss_grads(first, {"a": 1.0, "b": 1.0, "c": 1.0}) == loss_grads(resumed, {"a": 1.0, "b": 1.0, "c": 1.0})


def test_stch_uses_only_the_tasks_present():
    m = made(STCHWeighting, warmup_epochs=0)
    loss_grads(m, {"a": 1.0, "b": 1.0})  # c never seen in the nadir epoch: its nadir is 1
    m.on_epoch_end()
    assert m.nadir.tolist() == [1.0, 1.0, 1.0]
    assert loss_grads(m, {"b": 0.5}) == pytest.approx({"b": 2.0})  # one task: T = 1, softmax = 1


def test_db_mtl_scales_every_averaged_gradient_to_the_largest_norm():
    m = made(DBMTLWeighting, beta=0.0)
    m.combine({n: torch.tensor(v) for n, v in zip(TASKS3, [0.5, 2.0, 4.0])})
    d = m.combine_gradients(ROWS.clone())
    log_rows = ROWS / torch.tensor([[0.5], [2.0], [4.0]], dtype=torch.float64)  # ∇log L_i (β = 0: no averaging)
    alpha = torch.tensor(list(m.alpha().values()), dtype=torch.float64)
    scaled = alpha.unsqueeze(1) * log_rows
    assert torch.allclose(scaled.norm(dim=1), log_rows.norm(dim=1).max().expand(3), rtol=1e-6)
    assert torch.allclose(d, scaled.sum(0), rtol=1e-6)


def test_db_mtl_ignores_the_scale_of_a_task_loss():
    """log(c·L) has the gradient of log L: scaling a task's loss (its value and its gradient) changes nothing."""
    outs = []
    for scale in (1.0, 1000.0):
        m = made(DBMTLWeighting)
        for step in range(3):
            values = torch.tensor([0.5, 2.0 * scale, 4.0]) / (1 + step)
            rows = ROWS * torch.tensor([[1.0], [scale], [1.0]], dtype=torch.float64) * (1 + step)
            m.combine(dict(zip(TASKS3, values)))
            out = m.combine_gradients(rows)
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], rtol=1e-6)


def test_db_mtl_moving_average_resumes_exactly_and_updates_present_rows_only():
    first = made(DBMTLWeighting, beta=0.5, beta_sigma=0.5)
    first.combine({"a": torch.tensor(1.0), "c": torch.tensor(2.0)})
    first.combine_gradients(ROWS[[0, 2]].clone(), present=[0, 2])
    assert first.grad_buffer[1].abs().sum() == 0 and first.grad_buffer[0].abs().sum() > 0
    resumed = made(DBMTLWeighting, beta=0.5, beta_sigma=0.5)
    resumed.load_state_dict(first.state_dict())  # sized like the checkpoint's buffer
    outs = []
    for m in (first, resumed):
        m.combine(dict(zip(TASKS3, torch.tensor([1.0, 2.0, 3.0]))))
        outs.append(m.combine_gradients(ROWS.clone()))
    assert torch.equal(outs[0], outs[1]) and int(resumed.updates) == 2


@pytest.mark.parametrize(
    "make,key",
    [
        (lambda: STCHWeighting(mu=0.0), "strategy.weighting.mu"),
        (lambda: STCHWeighting(warmup_epochs=-1), "strategy.weighting.warmup_epochs"),
        (lambda: STCHWeighting(warmup_epochs=1.5), "strategy.weighting.warmup_epochs"),
        (lambda: DBMTLWeighting(beta=-0.1), "strategy.weighting.beta"),
        (lambda: DBMTLWeighting(beta_sigma=float("nan")), "strategy.weighting.beta_sigma"),
        (lambda: DBMTLWeighting(mode="representation"), "strategy.weighting.mode"),
    ],
)
def test_bad_values_name_their_key(make, key):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
