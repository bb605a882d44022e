"""PCD, Krum and the trimmed mean on small known values: defining properties, state that survives a
checkpoint, subsets of tasks, and bad config values naming their key."""

from __future__ import annotations

import pytest
import torch
from small_matrices import AGREE, CONFLICT, TASKS3, made  # noqa: F401

from peftlab.errors import ConfigError
from peftlab.weighting import KrumWeighting, PCDWeighting, TrimmedMeanWeighting


def test_pcd_is_the_primary_gradient_when_the_others_already_progress():
    d = made(PCDWeighting, tau=0.02).combine_gradients(AGREE.clone())
    assert torch.allclose(d, AGREE[0], rtol=1e-9)


def test_pcd_gives_every_conflicting_task_progress_on_the_primary_scale():
    assert (CONFLICT[1:] @ CONFLICT[0] < 0).any()  # following the primary task alone hurts a secondary one
    d = made(PCDWeighting, tau=0.3).combine_gradients(CONFLICT.clone())
    assert (CONFLICT[1:] @ d > 0).all() and float(d.norm()) == pytest.approx(float(CONFLICT[0].norm()))


def test_pcd_primary_by_name_is_the_first_row_of_the_reordered_problem():
    by_name = made(PCDWeighting, tau=0.3, primary="b").combine_gradients(CONFLICT.clone())
    reordered = made(PCDWeighting, tau=0.3, tasks=["b", "a", "c"]).combine_gradients(CONFLICT[[1, 0, 2]].clone())
    assert torch.allclose(by_name, reordered, rtol=1e-12)


def test_pcd_moving_average_resumes_exactly_and_a_batch_without_the_primary_is_the_sum():
    first = made(PCDWeighting, tau=0.3, beta=0.5)
    assert torch.equal(first.combine_gradients(CONFLICT[1:].clone(), present=[1, 2]), CONFLICT[1:].sum(0))
    assert first.ema_steps.tolist() == [0, 1, 1]
    resumed = made(PCDWeighting, tau=0.3, beta=0.5)
    resumed.load_state_dict(first.state_dict())
    assert torch.equal(first.combine_gradients(CONFLICT * 2), resumed.combine_gradients(CONFLICT * 2))


def test_krum_drops_the_outlying_task():
    rows = torch.tensor([[1.0, 0.0], [1.1, 0.1], [0.9, -0.1], [-5.0, 8.0]], dtype=torch.float64)
    m = made(KrumWeighting, ["a", "b", "c", "d"], n_selected=3)
    d = m.combine_gradients(rows.clone())
    assert m.alpha()["d"] == 0.0 and torch.allclose(d, 4 / 3 * rows[:3].sum(0))


def test_krum_with_every_task_selected_is_the_sum():
    assert torch.allclose(made(KrumWeighting, n_selected=3).combine_gradients(CONFLICT.clone()), CONFLICT.sum(0))


def test_trimmed_mean_of_three_tasks_is_three_times_the_coordinate_median():
    rows = CONFLICT.clone()
    rows[2] *= 1000.0  # one huge task moves no coordinate beyond the other two
    d = made(TrimmedMeanWeighting, trim_number=1).combine_gradients(rows)
    assert torch.allclose(d, 3 * rows.median(dim=0).values)


def test_trimmed_mean_without_trimming_is_the_sum_and_ties_count_once():
    assert torch.allclose(made(TrimmedMeanWeighting, trim_number=0).combine_gradients(CONFLICT.clone()), CONFLICT.sum(0))
    rows = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 5.0]], dtype=torch.float64)
    m = made(TrimmedMeanWeighting, trim_number=1)
    assert m.combine_gradients(rows).tolist() == [3.0, 6.0]
    # ties rank by task order: in both columns the middle entry kept is b's, so b is kept whole (α = T/(T − 2k) = 3)
    assert m.alpha() == pytest.approx({"a": 0.0, "b": 3.0, "c": 0.0})


@pytest.mark.parametrize(
    "make,key",
    [
        (lambda: PCDWeighting(tau=1.5), "strategy.weighting.tau"),
        (lambda: PCDWeighting(beta=1.0), "strategy.weighting.beta"),
        (lambda: PCDWeighting(eps=-1.0), "strategy.weighting.eps"),
        (lambda: made(PCDWeighting, primary="z"), "strategy.weighting.primary"),
        (lambda: KrumWeighting(n_byzantine=-1), "strategy.weighting.n_byzantine"),
        (lambda: made(KrumWeighting, n_byzantine=1), "strategy.weighting.n_byzantine"),
        (lambda: made(KrumWeighting, n_selected=4), "strategy.weighting.n_selected"),
        (lambda: TrimmedMeanWeighting(trim_number=0.5), "strategy.weighting.trim_number"),
        (lambda: made(TrimmedMeanWeighting, trim_number=2), "strategy.weighting.trim_number"),
    ],
)
def test_bad_values_name_their_key(make, key):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
