"""The per-task gradient matrices both peer comparisons feed (torchjd's and LibMTL's) and the closeness check."""

from __future__ import annotations

import torch


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


def assert_close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-6) -> None:
    """‖got − want‖ below ``rel`` × the larger of the two norms."""
    scale = max(float(want.norm()), float(got.norm()), 1e-12)
    assert float((got - want).norm()) / scale < rel, (got.norm(), want.norm(), (got - want).norm())
