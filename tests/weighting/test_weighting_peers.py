"""The new gradient methods against torchjd 0.18 (a test-only peer, in the dev extra): the same
per-task gradient matrices go to both and the combined directions must agree.

Scale conventions: peftlab reports α on the equal-weighting (sum) scale; torchjd's UPGrad,
DualProj and Aligned-MTL use a mean preference (1/T), so their output is multiplied by T before
comparing; ConFIG, GradVac, GradDrop and FairGrad are on the same scale in both. Matrices are
float64 on both sides, so the comparison is to 1e-6 relative (of the larger direction's norm).
Random methods (GradVac's order, GradDrop's draws) are compared by seeding torch's global generator
with the key peftlab seeds its own generator with. LibMTL is not compared: its PyPI release (1.1.5,
2021) has none of these methods except GradVac / GradDrop, and it pulls torchvision.
"""

from __future__ import annotations

import pytest
import torch

torchjd = pytest.importorskip("torchjd.aggregation")
pytest.importorskip("qpsolvers")  # torchjd's UPGrad / DualProj solver

from peer_matrices import CASES, assert_close, matrices  # noqa: E402

from peftlab.weighting import (  # noqa: E402
    AlignedMTLWeighting,
    ConFIGWeighting,
    DualProjWeighting,
    FairGradWeighting,
    GradDropWeighting,
    GradVacWeighting,
    KrumWeighting,
    PCDWeighting,
    TrimmedMeanWeighting,
    UPGradWeighting,
)


def ours(method, rows: torch.Tensor) -> torch.Tensor:
    method.setup([f"t{i}" for i in range(len(rows))])
    return method.combine_gradients(rows.clone())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "make_ours,make_theirs,rescale",
    [
        (UPGradWeighting, lambda: torchjd.UPGrad(), "T"),
        (DualProjWeighting, lambda: torchjd.DualProj(), "T"),
        (AlignedMTLWeighting, lambda: torchjd.AlignedMTL(), "T"),
        (lambda: AlignedMTLWeighting(scale_mode="rmse"), lambda: torchjd.AlignedMTL(scale_mode="rmse"), "T"),
        (ConFIGWeighting, lambda: torchjd.ConFIG(), "1"),
        (FairGradWeighting, lambda: torchjd.FairGrad(alpha=1.0), "1"),
        (lambda: FairGradWeighting(alpha=2.0), lambda: torchjd.FairGrad(alpha=2.0), "1"),
    ],
    ids=["upgrad", "dualproj", "aligned_mtl", "aligned_mtl_rmse", "config", "fairgrad", "fairgrad_a2"],
)
def test_deterministic_methods_match_torchjd(case, make_ours, make_theirs, rescale):
    rows = matrices()[case]
    want = make_theirs()(rows) * (len(rows) if rescale == "T" else 1)
    # FairGrad: both run scipy's least_squares on the same Gram matrix from the same start, so
    # they stop at the same iterate; the dual-cone methods solve the same strictly convex QP
    # exactly (quadprog vs scipy's NNLS, both active-set), so they agree to round-off.
    assert_close(ours(make_ours(), rows), want)


@pytest.mark.parametrize("case", CASES)
def test_gradvac_matches_torchjd_over_several_steps(case):
    """Same random orders (torch's generator seeded with our key) and the same EMA targets, step after step."""
    rows = matrices()[case]
    theirs = torchjd.GradVac(beta=0.5, eps=1e-8)
    mine = GradVacWeighting(beta=0.5, eps=1e-8, seed=3)
    mine.setup([f"t{i}" for i in range(len(rows))])
    for step in range(4):
        step_rows = rows * (1 + 0.3 * step) + 0.2 * step * rows.flip(0)
        torch.manual_seed(3 * 1_000_003 + step)
        want = theirs(step_rows)
        assert_close(mine.combine_gradients(step_rows.clone()), want)
        mine.on_optimizer_step()
    assert mine.targets.abs().sum() > 0  # the targets moved (they are compared implicitly above)


@pytest.mark.parametrize("case", CASES)
def test_graddrop_matches_torchjd_with_the_same_draw(case):
    rows = matrices()[case]
    mine = GradDropWeighting(seed=5)
    mine.setup([f"t{i}" for i in range(len(rows))])
    for _ in range(2):  # the key moves with the optimizer step
        torch.manual_seed(5 * 1_000_003 + int(mine.steps))
        want = torchjd.GradDrop()(rows)
        assert_close(mine.combine_gradients(rows.clone()), want, rel=1e-12)
        mine.on_optimizer_step()


def test_graddrop_leak_matches_torchjd():
    rows = matrices()["conflicting_3"]
    leak = [0.0, 0.5, 1.0]
    mine = GradDropWeighting(leak=leak, seed=1)
    mine.setup(["a", "b", "c"])
    torch.manual_seed(1 * 1_000_003)
    want = torchjd.GradDrop(leak=torch.tensor(leak, dtype=torch.float64))(rows)
    assert_close(mine.combine_gradients(rows.clone()), want, rel=1e-12)


CASES3 = [c for c in CASES if c.endswith("_3")]  # Krum needs n_byzantine + 3 rows, a trim of 1 needs 3


@pytest.mark.parametrize("case", CASES3)
@pytest.mark.parametrize("n_selected", [1, 2])
def test_krum_matches_torchjd(case, n_selected):
    rows = matrices()[case]
    want = torchjd.Krum(n_byzantine=0, n_selected=n_selected)(rows) * len(rows)  # torchjd's mean of the selected rows × T
    assert_close(ours(KrumWeighting(n_selected=n_selected), rows), want, rel=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_trimmed_mean_matches_torchjd(case):
    rows = matrices()[case]
    k = 1 if len(rows) == 3 else 0
    want = torchjd.TrimmedMean(trim_number=k)(rows) * len(rows)  # torchjd's mean of the kept entries × T
    assert_close(ours(TrimmedMeanWeighting(trim_number=k), rows), want, rel=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tau", [0.02, 0.5])
def test_pcd_matches_torchjd_over_several_steps(case, tau):
    """Same EMA of squared norms, step after step; both on the primary gradient's scale (no rescale)."""
    rows = matrices()[case]
    theirs = torchjd.PCD(tau=tau, beta=0.9)
    mine = PCDWeighting(tau=tau, beta=0.9)
    mine.setup([f"t{i}" for i in range(len(rows))])
    for step in range(4):
        step_rows = rows * (1 + 0.3 * step) + 0.2 * step * rows.flip(0)
        assert_close(mine.combine_gradients(step_rows.clone()), theirs(step_rows))
    assert int(mine.ema_steps[0]) == 4
