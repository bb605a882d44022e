"""The methods of issue 24 on small known values: defining properties, state that survives a
checkpoint, per-step seeding, subsets of tasks, and bad config values naming their key."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from small_matrices import AGREE, CONFLICT, TASKS3, made  # noqa: F401

from peftlab.errors import ConfigError
from peftlab.weighting import (
    AlignedMTLWeighting,
    ConFIGWeighting,
    DualProjWeighting,
    FairGradWeighting,
    GLSWeighting,
    GradDropWeighting,
    GradVacWeighting,
    UPGradWeighting,
)


@pytest.mark.parametrize("cls", [UPGradWeighting, DualProjWeighting])
def test_dual_cone_methods_conflict_with_no_task(cls):
    assert (CONFLICT @ CONFLICT.sum(0) < 0).any()  # the plain sum would increase a task's loss
    d = made(cls, reg_eps=1e-12).combine_gradients(CONFLICT.clone())  # the exact dual cone (torchjd's ridge 1e-4 off)
    assert (CONFLICT @ d >= -1e-9).all()  # no task's loss increases to first order


@pytest.mark.parametrize("cls", [UPGradWeighting, DualProjWeighting])
def test_dual_cone_methods_are_the_sum_when_nothing_conflicts(cls):
    d = made(cls, reg_eps=1e-12).combine_gradients(AGREE.clone())
    assert torch.allclose(d, AGREE.sum(0), rtol=1e-6)


def test_aligned_mtl_makes_the_combined_system_well_conditioned():
    m = made(AlignedMTLWeighting)
    m.combine_gradients(CONFLICT.clone())
    # the update is Σ α_i g_i with α = B·1, B = √λ_min V Λ^{-1/2} Vᵀ: B G has singular values all √λ_min
    lam, vec = np.linalg.eigh((CONFLICT @ CONFLICT.T).numpy())
    balance = np.sqrt(lam.min()) * (vec / np.sqrt(lam)) @ vec.T
    sv = np.linalg.svd(balance @ CONFLICT.numpy(), compute_uv=False)
    assert sv == pytest.approx([np.sqrt(lam.min())] * 3, rel=1e-9)
    assert list(m.alpha().values()) == pytest.approx((balance @ np.ones(3)).tolist(), rel=1e-6)


def test_config_has_equal_cosine_with_every_task():
    d = made(ConFIGWeighting).combine_gradients(CONFLICT.clone())
    cos = (CONFLICT @ d) / (CONFLICT.norm(dim=1) * d.norm())
    assert float(cos.min()) > 0 and torch.allclose(cos, cos[0].expand(3), rtol=1e-9)


def test_config_is_the_sum_for_identical_gradients():
    rows = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    d = made(ConFIGWeighting, ["a", "b"]).combine_gradients(rows)
    assert d.tolist() == pytest.approx([2.0, 4.0])


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_fairgrad_weights_solve_the_fairness_condition(alpha):
    m = made(FairGradWeighting, alpha=alpha)
    m.combine_gradients(CONFLICT.clone())
    w = np.array(list(m.alpha().values()), dtype=np.float64)
    gram = (CONFLICT @ CONFLICT.T).numpy()
    assert (w > 0).all() and gram @ w == pytest.approx(w ** (-1.0 / alpha), rel=1e-4)  # float32 α record


def test_fairgrad_alpha_zero_is_the_mean():
    d = made(FairGradWeighting, alpha=0.0).combine_gradients(CONFLICT.clone())
    assert torch.allclose(d, CONFLICT.mean(0))


def test_gradvac_targets_are_state_and_resume_exactly():
    first = made(GradVacWeighting, seed=2)
    outs = []
    for step in range(3):
        outs.append(first.combine_gradients(CONFLICT * (1 + step)))
        first.on_optimizer_step()
    assert first.targets.abs().sum() > 0 and set(first.state_dict()) >= {"targets", "steps"}
    resumed = made(GradVacWeighting, seed=2)
    resumed.load_state_dict(first.state_dict())
    a, b = first.combine_gradients(CONFLICT * 4), resumed.combine_gradients(CONFLICT * 4)
    assert torch.equal(a, b) and torch.equal(first.targets, resumed.targets)


def test_gradvac_reads_and_writes_only_the_present_tasks_targets():
    m = made(GradVacWeighting)
    m.combine_gradients(CONFLICT[[0, 2]].clone(), present=[0, 2])
    assert m.targets[1].abs().sum() == 0 and m.targets[:, 1].abs().sum() == 0
    assert m.targets[0, 2] != 0 and m.targets[2, 0] != 0


def test_graddrop_draws_per_step_and_identically_for_the_same_step():
    rows = torch.randn(3, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = made(GradDropWeighting, seed=4), made(GradDropWeighting, seed=4)
    d0a, d0b = a.combine_gradients(rows.clone()), b.combine_gradients(rows.clone())
    assert torch.equal(d0a, d0b)  # what every DDP rank computes
    a.on_optimizer_step()
    assert not torch.equal(a.combine_gradients(rows.clone()), d0a)  # next step, next draw
    # every kept coordinate of the update has one sign across the tasks that contributed
    assert all(0.0 <= v <= 1.0 for v in b.alpha().values())


def test_graddrop_keeps_everything_when_signs_agree():
    rows = AGREE.abs()
    m = made(GradDropWeighting)
    assert torch.allclose(m.combine_gradients(rows.clone()), rows.sum(0))
    assert list(m.alpha().values()) == pytest.approx([1.0, 1.0, 1.0])


def test_gls_is_t_times_the_geometric_mean_and_weights_by_inverse_loss():
    m = made(GLSWeighting)
    values = {"a": 0.5, "b": 2.0, "c": 8.0}
    losses = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    objective = m.combine(losses)
    geo = math.prod(values.values()) ** (1 / 3)
    assert float(objective) == pytest.approx(3 * geo)
    objective.backward()
    # ∂(T·(ΠL)^{1/T})/∂L_i = (ΠL)^{1/T}/L_i
    assert [float(losses[n].grad) for n in values] == pytest.approx([geo / v for v in values.values()])
    assert list(m.alpha().values()) == pytest.approx([geo / v for v in values.values()])


def test_gls_is_the_sum_for_equal_losses_and_uses_only_present_tasks():
    m = made(GLSWeighting)
    assert float(m.combine({n: torch.tensor(1.5) for n in TASKS3})) == pytest.approx(4.5)
    assert float(m.combine({"b": torch.tensor(3.0)})) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "make,key",
    [
        (lambda: UPGradWeighting(reg_eps=0.0), "strategy.weighting.reg_eps"),
        (lambda: DualProjWeighting(norm_eps=-1.0), "strategy.weighting.norm_eps"),
        (lambda: AlignedMTLWeighting(scale_mode="max"), "strategy.weighting.scale_mode"),
        (lambda: FairGradWeighting(alpha=-1.0), "strategy.weighting.alpha"),
        (lambda: FairGradWeighting(max_iters=0), "strategy.weighting.max_iters"),
        (lambda: GradVacWeighting(beta=1.5), "strategy.weighting.beta"),
        (lambda: GradDropWeighting(leak=[0.0, 2.0, 0.0]), "strategy.weighting.leak"),
        (lambda: made(GradDropWeighting, leak=[0.0, 0.5]), "strategy.weighting.leak"),
        (lambda: ConFIGWeighting(mode="fast"), "strategy.weighting.mode"),
    ],
)
def test_bad_values_name_their_key(make, key):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
