"""Uncertainty weighting pairs each learned s_i with its task's loss by name, whatever the dict order."""

import math

import pytest
import torch

from peftlab.weighting import UncertaintyWeighting


def test_uncertainty_pairs_log_vars_with_losses_by_task_name():
    w = UncertaintyWeighting()
    w.setup(["a", "b", "c"])
    s = {"a": 0.3, "b": -0.7, "c": 1.2}
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([s["a"], s["b"], s["c"]]))
    losses = {"c": 8.0, "a": 0.5, "b": 2.0}  # not in task order
    expected = sum(math.exp(-s[n]) * v + s[n] for n, v in losses.items())
    got = w.combine({n: torch.tensor(v) for n, v in losses.items()})
    assert float(got) == pytest.approx(expected, rel=1e-6)
    in_order = w.combine({n: torch.tensor(losses[n]) for n in ("a", "b", "c")})
    assert float(in_order) == pytest.approx(float(got), rel=1e-6)
    subset = w.combine({"c": torch.tensor(8.0)})  # mixed batches carry one task
    assert float(subset) == pytest.approx(math.exp(-s["c"]) * 8.0 + s["c"], rel=1e-6)
