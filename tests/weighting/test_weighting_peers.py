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

from peftlab.weighting import (  # noqa: E402
    AlignedMTLWeighting,
    ConFIGWeighting,
    DualProjWeighting,
    FairGradWeighting,
    GradDropWeighting,
    GradVacWeighting,
    UPGradWeighting,
)


def matrices() -> dict[str, torch.Tensor]:
    """Per-task gradient matrices [T, P] covering the cases of the issue."""
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(40, generator=gen, dtype=torch.float64)
    noise = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    agree = base + 0.3 * noise
    return {
        "conflicting_2": torch.stack([base, -0.8 * base + 0.5 * noise[0]]),
        "agreeing_2": agree[:2],
        "near_parallel_2": torch.stack([base, 1.3 * base + 1e-3 * noise[0]]),
        "conflicting_3": torch.stack([base, -0.5 * base + noise[0], noise[1] - 0.2 * base]),
        "agreeing_3": agree,
        "one_10x_larger_3": torch.stack([10 * noise[0], noise[1], -0.5 * noise[0] + noise[2]]),
        "random_3": noise,
    }


CASES = list(matrices())


def ours(method, rows: torch.Tensor) -> torch.Tensor:
    method.setup([f"t{i}" for i in range(len(rows))])
    return method.combine_gradients(rows.clone())


def assert_close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-6) -> None:
    scale = max(float(want.norm()), float(got.norm()), 1e-12)
    assert float((got - want).norm()) / scale < rel, (got.norm(), want.norm(), (got - want).norm())


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
