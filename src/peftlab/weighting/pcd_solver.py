"""The quadratic programme of PCD, solved exactly from the Gram matrix (the dual active-set method of
Goldfarb & Idnani 1983 for an identity Hessian); adapted from torchjd 0.18's ``_pcd._solve_qp``
(MIT License, Copyright (c) the torchjd authors), same tolerances, same iteration order.
"""

from __future__ import annotations

import torch


def solve_pcd(gram: torch.Tensor, taus: torch.Tensor, tol: float = 1e-9, dependence_tol: float = 1e-9, max_iters: int | None = None) -> torch.Tensor:
    """Weights w = [1, μ_2, …, μ_m] with Σ_i w_i g_i = argmin_d ½‖d − g_1‖² s.t. g_jᵀd ≥ τ_j‖g_j‖² (j ≥ 2).

    ``gram``: float64 Gram matrix of g_1 … g_m (row 0 the primary objective); μ_j ≥ 0 are the
    constraints' KKT multipliers, so every inner product the method needs is read from ``gram``.
    Infeasible constraints (possible from m = 3): [1, 0, …, 0]. A constraint counts as met when
    violated by at most ``tol`` × the largest diagonal entry; a gradient counts as dependent on the
    active ones when its orthogonal part's squared norm is at most ``dependence_tol`` × its own.
    ``max_iters`` (default 10 m) only guards against cycling from rounding errors.
    """
    m = gram.shape[0]
    weights = torch.zeros(m, dtype=gram.dtype)
    weights[0] = 1.0
    if m == 1:
        return weights
    max_iters = 10 * m if max_iters is None else max_iters
    gs = gram[1:, 1:]
    b = taus * gs.diagonal() - gram[1:, 0]  # b_j > 0 iff g_1 violates constraint j
    mu = torch.zeros(m - 1, dtype=gram.dtype)
    atol = tol * max(gram.diagonal().max().item(), torch.finfo(gram.dtype).tiny)
    active: list[int] = []
    n_iters = 0
    while n_iters < max_iters:
        slacks = gs @ mu - b
        slacks[active] = 0.0  # active constraints hold with equality, up to rounding
        p = int(slacks.argmin())
        if slacks[p] >= -atol:
            break
        slack_p = slacks[p]
        while n_iters < max_iters:  # add the violated constraint p, dropping others first if needed
            n_iters += 1
            if active:
                r = torch.linalg.solve(gs[active][:, active], gs[active, p])
                z_sq_norm = gs[p, p] - gs[p, active] @ r
                ratios = torch.where(r > 0.0, mu[active] / r, torch.inf)
                k = int(ratios.argmin())
                partial_step = ratios[k].item()
            else:
                r = torch.zeros(0, dtype=gram.dtype)
                z_sq_norm = gs[p, p]
                k, partial_step = -1, torch.inf
            full_step = (-slack_p / z_sq_norm).item() if z_sq_norm > dependence_tol * gs[p, p] else torch.inf
            step = min(partial_step, full_step)
            if step == torch.inf:
                return weights  # infeasible
            mu[active] -= step * r
            mu[p] += step
            if full_step <= partial_step:
                active.append(p)
                break
            mu[active[k]] = 0.0  # the multiplier reached zero: drop that constraint, retry p
            del active[k]
            slack_p = gs[p] @ mu - b[p]
    weights[1:] = mu.clamp(min=0.0)
    return weights
