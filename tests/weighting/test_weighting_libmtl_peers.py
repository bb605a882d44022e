"""STCH, DB-MTL and MoCo against LibMTL (main, commit 4336804847eaa5e0b924b743d76beec7ac3fdc97).

LibMTL is not installed (its PyPI release, 1.1.5 of 2021, has neither method, and it pulls
torchvision), so each method's ``backward`` body is transcribed below line for line and run with
real autograd on a linear model whose per-task gradients are exactly the rows of the peer matrices:
L_i(θ) = c_i + g_i·θ at θ = 0 (value c_i > 0, gradient g_i). Both sides then see the same gradient
matrices and losses; the combined directions are compared to 1e-6 relative (of the larger norm).

Scale: none needed. STCH's LibMTL gradient is Σ_i ∂loss/∂L_i · g_i and ours Σ_i α_i g_i with the
same α; DB-MTL's update is Σ_i α_i m_i on both sides (LibMTL's sum scale is kept); MoCo's is
Yᵀλ in LibMTL (Σλ = 1) and T·Yᵀλ here (the equal-weighting scale), so LibMTL's is multiplied by T.
"""

from __future__ import annotations

import pytest
import torch
from peer_matrices import CASES, assert_close, matrices

from peftlab.weighting import DBMTLWeighting, MoCoWeighting, STCHWeighting

LOSS_SCALES = torch.tensor([0.7, 2.5, 0.05], dtype=torch.float64)  # per-task losses: one 50× smaller than another


class LinearTasks:
    """θ ∈ R^P with L_i(θ) = c_i + g_i·θ, evaluated at θ = 0."""

    def __init__(self, rows: torch.Tensor, values: torch.Tensor):
        self.rows, self.values = rows, values
        self.theta = torch.zeros(rows.shape[1], dtype=torch.float64, requires_grad=True)

    def losses(self) -> torch.Tensor:
        return self.values + self.rows @ self.theta


class LibMTLSTCH:
    """LibMTL/weighting/STCH.py ``init_param`` + ``backward`` (``self.epoch`` set by the trainer)."""

    def __init__(self, task_num: int):
        self.task_num, self.epoch = task_num, 0
        self.step, self.nadir_vector, self.average_loss, self.average_loss_count = 0, None, 0.0, 0

    def backward(self, losses: torch.Tensor, mu: float, warmup_epoch: int) -> None:
        self.step += 1
        if self.epoch < warmup_epoch:
            loss = torch.mul(torch.log(losses + 1e-20), torch.ones_like(losses)).sum()
            loss.backward()
            return
        elif self.epoch == warmup_epoch:
            loss = torch.mul(torch.log(losses + 1e-20), torch.ones_like(losses)).sum()
            self.average_loss += losses.detach()
            self.average_loss_count += 1
            loss.backward()
            return
        else:
            if self.nadir_vector is None:
                self.nadir_vector = self.average_loss / self.average_loss_count
            losses = torch.log(losses / self.nadir_vector + 1e-20)
            max_term = torch.max(losses.data).detach()
            reg_losses = losses - max_term
            loss = mu * torch.log(torch.sum(torch.exp(reg_losses / mu))) * self.task_num
            loss.backward()


class LibMTLDBMTL:
    """LibMTL/weighting/DB_MTL.py ``init_param`` + ``backward`` (``_compute_grad`` = one autograd.grad per task)."""

    def __init__(self, task_num: int, grad_dim: int):
        self.task_num, self.step = task_num, 0
        self.grad_buffer = torch.zeros(task_num, grad_dim, dtype=torch.float64)

    def backward(self, model: LinearTasks, beta: float, beta_sigma: float) -> torch.Tensor:
        self.step += 1
        log_losses = torch.log(model.losses() + 1e-8)
        batch_grads = torch.stack([torch.autograd.grad(log_losses[i], model.theta, retain_graph=True)[0] for i in range(self.task_num)])
        self.grad_buffer = batch_grads + (beta / self.step**beta_sigma) * (self.grad_buffer - batch_grads)
        u_grad = self.grad_buffer.norm(dim=-1)
        alpha = u_grad.max() / (u_grad + 1e-8)
        return sum([alpha[i] * self.grad_buffer[i] for i in range(self.task_num)])


class LibMTLMoCo:
    """LibMTL/weighting/MoCo.py ``init_param`` + ``backward`` (``_compute_grad`` = one autograd.grad per task)."""

    def __init__(self, task_num: int, grad_dim: int):
        self.task_num, self.step = task_num, 0
        self.y = torch.zeros(task_num, grad_dim, dtype=torch.float64)
        self.lambd = torch.ones([task_num], dtype=torch.float64) / task_num

    def backward(self, model: LinearTasks, beta: float, beta_sigma: float, gamma: float, gamma_sigma: float, rho: float) -> torch.Tensor:
        self.step += 1
        losses = model.losses()
        grads = torch.stack([torch.autograd.grad(losses[i], model.theta, retain_graph=True)[0] for i in range(self.task_num)])
        with torch.no_grad():
            for tn in range(self.task_num):
                grads[tn] = grads[tn] / (grads[tn].norm() + 1e-8) * losses[tn]
        self.y = self.y - (beta / self.step**beta_sigma) * (self.y - grads)
        self.lambd = torch.softmax(self.lambd - (gamma / self.step**gamma_sigma) * (self.y @ self.y.t() + rho * torch.eye(self.task_num, dtype=torch.float64)) @ self.lambd, -1)
        return self.y.t() @ self.lambd


def step_inputs(rows: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient matrix and the losses at ``step`` (both drift, so the moving averages matter)."""
    t = len(rows)
    values = LOSS_SCALES[:t] * (1.0 + 0.4 * step) ** torch.tensor([-1.0, -0.5, -2.0], dtype=torch.float64)[:t]
    return rows * (1 + 0.3 * step) + 0.2 * step * rows.flip(0), values


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mu", [1.0, 0.1])
def test_stch_matches_libmtl_through_warmup_nadir_and_smooth_max(case, mu):
    rows = matrices()[case]
    t = len(rows)
    theirs = LibMTLSTCH(t)
    mine = STCHWeighting(mu=mu, warmup_epochs=1)
    mine.setup([f"t{i}" for i in range(t)])
    for epoch in range(4):  # warm-up, nadir epoch, then two STCH epochs
        theirs.epoch = epoch
        for step in range(3):
            step_rows, values = step_inputs(rows, 3 * epoch + step)
            model = LinearTasks(step_rows, values)
            theirs.backward(model.losses(), mu=mu, warmup_epoch=1)
            want = model.theta.grad
            leaves = {f"t{i}": values[i].clone().requires_grad_(True) for i in range(t)}
            mine.combine(leaves).backward()
            got = torch.stack([leaves[f"t{i}"].grad for i in range(t)]) @ step_rows
            assert_close(got, want)
        mine.on_epoch_end()
    assert torch.allclose(mine.nadir, theirs.nadir_vector)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("beta,beta_sigma", [(0.9, 0.0), (0.5, 0.5)])
def test_db_mtl_matches_libmtl_over_several_steps(case, beta, beta_sigma):
    rows = matrices()[case]
    t = len(rows)
    theirs = LibMTLDBMTL(t, rows.shape[1])
    mine = DBMTLWeighting(beta=beta, beta_sigma=beta_sigma)
    mine.setup([f"t{i}" for i in range(t)])
    for step in range(4):
        step_rows, values = step_inputs(rows, step)
        want = theirs.backward(LinearTasks(step_rows, values), beta=beta, beta_sigma=beta_sigma)
        mine.combine({f"t{i}": values[i] for i in range(t)})
        assert_close(mine.combine_gradients(step_rows.clone()), want)
        mine.on_optimizer_step()
    assert torch.allclose(mine.grad_buffer, theirs.grad_buffer)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("gamma,rho", [(0.1, 0.0), (2.0, 0.5)])
def test_moco_matches_libmtl_over_several_steps(case, gamma, rho):
    rows = matrices()[case]
    t = len(rows)
    theirs = LibMTLMoCo(t, rows.shape[1])
    mine = MoCoWeighting(gamma=gamma, rho=rho)
    mine.setup([f"t{i}" for i in range(t)])
    for step in range(4):
        step_rows, values = step_inputs(rows, step)
        want = theirs.backward(LinearTasks(step_rows, values), beta=0.5, beta_sigma=0.5, gamma=gamma, gamma_sigma=0.5, rho=rho)
        mine.combine({f"t{i}": values[i] for i in range(t)})
        assert_close(mine.combine_gradients(step_rows.clone()), t * want)
        mine.on_optimizer_step()
    assert torch.allclose(mine.lambd, theirs.lambd) and torch.allclose(mine.tracked, theirs.y)
