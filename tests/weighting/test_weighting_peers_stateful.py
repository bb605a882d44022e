"""Nash-MTL, ExcessMTL, CR-MOGM, MoDo and SDMGrad against torchjd 0.18 (a test-only peer, in the dev
extra): the same per-task gradient matrices (peer_matrices: conflicting, agreeing, near-parallel,
2 and 3 tasks, one task 10× larger) go to both, four steps in a row (the rows change from step to
step), so the state each method carries (Nash-MTL's previous α, ExcessMTL's squared-gradient sums
and baseline, the smoothed / projected weights) is compared implicitly at every step.

Scale conventions: torchjd's ExcessMTL, CR-MOGM(UPGrad / DualProj), MoDo and SDMGrad weights sum
to 1 (mean scale); peftlab's α is on the equal-weighting (sum) scale, so torchjd's direction is
multiplied by T. Nash-MTL's α is not normalised in either (no rescale). MoDo and SDMGrad get the
single-batch Gram matrix G Gᵀ on both sides (what peftlab feeds them; see modo.py).
"""

from __future__ import annotations

import pytest
import torch

torchjd = pytest.importorskip("torchjd.aggregation")
pytest.importorskip("qpsolvers")  # torchjd's UPGrad / DualProj solver (CR-MOGM's inner method)

from peer_matrices import CASES, assert_close, matrices  # noqa: E402

from peftlab.weighting import CRMOGMWeighting, ExcessMTLWeighting, MoDoWeighting, NashMTLWeighting, SDMGradWeighting  # noqa: E402


class OnGram:
    """torchjd's weighting of the Gram matrix G Gᵀ applied to G (what a Gramian-weighted aggregator does)."""

    def __init__(self, weighting):
        self.weighting = weighting

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        return self.weighting(rows @ rows.T) @ rows


def steps(rows: torch.Tensor):
    """Four different matrices built from ``rows`` (the state moves between them)."""
    return [rows * (1 + 0.3 * k) + 0.2 * k * rows.flip(0) for k in range(4)]


def compare(mine, theirs, rows: torch.Tensor, rescale: bool, rel: float = 1e-6) -> None:
    mine.setup([f"t{i}" for i in range(len(rows))])
    for step_rows in steps(rows):
        want = theirs(step_rows) * (len(rows) if rescale else 1)
        assert_close(mine.combine_gradients(step_rows.clone()), want, rel=rel)
        mine.on_optimizer_step()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "make_ours,make_theirs",
    [
        (ExcessMTLWeighting, lambda: torchjd.WeightedAggregator(torchjd.ExcessMTLWeighting())),
        (lambda: ExcessMTLWeighting(robust_step_size=0.5, n_warmup_steps=2), lambda: torchjd.WeightedAggregator(torchjd.ExcessMTLWeighting(robust_step_size=0.5, n_warmup_steps=2))),
        (MoDoWeighting, lambda: OnGram(torchjd.MoDoWeighting())),
        (lambda: MoDoWeighting(gamma=0.5, rho=0.0), lambda: OnGram(torchjd.MoDoWeighting(gamma=0.5, rho=0.0))),
        (SDMGradWeighting, lambda: OnGram(torchjd.SDMGradWeighting())),
        (lambda: SDMGradWeighting(lambda_=0.0, momentum=0.0, n_iter=5), lambda: OnGram(torchjd.SDMGradWeighting(lambda_=0.0, momentum=0.0, n_iter=5))),
        (lambda: CRMOGMWeighting(inner="upgrad"), lambda: OnGram(torchjd.CRMOGMWeighting(torchjd.UPGradWeighting()))),
        (lambda: CRMOGMWeighting(alpha=0.5, inner="dualproj"), lambda: OnGram(torchjd.CRMOGMWeighting(torchjd.DualProjWeighting(), alpha=0.5))),
    ],
    ids=["excess_mtl", "excess_mtl_warmup", "modo", "modo_g05", "sdmgrad", "sdmgrad_plain", "cr_mogm_upgrad", "cr_mogm_dualproj"],
)
def test_weight_methods_match_torchjd_step_after_step(case, make_ours, make_theirs):
    # Same arithmetic in float64 on both sides (the projection loop is torchjd's, the softmax update
    # and EMA are the same formulas): agreement to round-off.
    compare(make_ours(), make_theirs(), matrices()[case], rescale=True)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("max_norm", [1.0, 0.0])
def test_nash_mtl_matches_torchjd_step_after_step(case, max_norm):
    """Same problem, same solver (ECOS via cvxpy), same start and stop rules. The first step agrees to
    round-off; later steps start from the previous α, where ECOS stops within its own tolerance at
    points that differ by up to 9e-7 relative (measured: one_10x_larger_3), so later steps are
    compared at 1e-5 (the solver's tolerance), the first at 1e-6."""
    rows = matrices()[case]
    mine = NashMTLWeighting(max_norm=max_norm)
    theirs = torchjd.NashMTL(n_tasks=len(rows), max_norm=max_norm)
    mine.setup([f"t{i}" for i in range(len(rows))])
    for k, step_rows in enumerate(steps(rows)):
        assert_close(mine.combine_gradients(step_rows.clone()), theirs(step_rows), rel=1e-6 if k == 0 else 1e-5)
    assert int(mine.calls) == 4


def test_nash_mtl_reuses_its_weights_between_updates_like_torchjd():
    rows = matrices()["conflicting_3"]
    mine, theirs = NashMTLWeighting(update_weights_every=3), torchjd.NashMTL(n_tasks=3, update_weights_every=3)
    mine.setup(["a", "b", "c"])
    for step_rows in steps(rows):
        assert_close(mine.combine_gradients(step_rows.clone()), theirs(step_rows), rel=1e-5)
