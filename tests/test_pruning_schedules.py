"""Schedules: the cubic/linear/iterative/one-shot formulas, and the sparsity a run really reaches."""

import pytest

from peftlab.errors import ConfigError
from peftlab.pruning import PruningCallback, Schedule
from peftlab.train import train
from pruning_helpers import SHORT, Net, one_thread  # noqa: F401


def test_cubic_matches_zhu_gupta():
    s = Schedule("cubic", start_step=100, end_step=400, every_n_steps=20, initial_sparsity=0.1, final_sparsity=0.7)
    assert s.sparsity_at(0) == 0.0
    assert s.sparsity_at(100) == pytest.approx(0.1)
    assert s.sparsity_at(250) == pytest.approx(0.7 + (0.1 - 0.7) * 0.5**3)
    assert s.sparsity_at(400) == s.sparsity_at(10_000) == 0.7
    assert [t for t in range(0, 500) if s.is_update_step(t)] == list(range(100, 401, 20))


def test_linear_iterative_one_shot():
    assert Schedule("linear", 0, 10, 1, 0.0, 0.5).sparsity_at(4) == pytest.approx(0.2)
    it = Schedule("iterative", 0, 100, 10, 0.0, 0.5, amount=0.2)
    assert [it.sparsity_at(t) for t in (0, 10, 20, 30)] == pytest.approx([0.2, 0.4, 0.5, 0.5])  # never compounds
    one = Schedule("one_shot", start_step=7, final_sparsity=0.6)
    assert [t for t in range(20) if one.is_update_step(t)] == [7] and one.sparsity_at(7) == 0.6


def test_masks_never_compound_and_stay_monotonic():
    net = Net()
    cb = PruningCallback(scope="body")
    cb.attach(net)
    for s in (0.5, 0.5, 0.5):
        cb.update_masks(s)
    assert cb.measured_sparsity() == pytest.approx(0.5, abs=1e-3)  # Lightning's ModelPruning gives 0.875
    zeros_before = [(t.tensor == 0) for t in cb.targets]
    cb.update_masks(0.8)
    assert all(bool((t.tensor == 0)[z].all()) for t, z in zip(cb.targets, zeros_before))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"final_sparsity": 1.0}, "strategy.pruning.final_sparsity"),
        ({"final_sparsity": -0.1}, "strategy.pruning.final_sparsity"),
        ({"start_step": 50, "end_step": 50}, "strategy.pruning.end_step"),
        ({"schedule": "exponential"}, "strategy.pruning.schedule"),
        ({"schedule": "iterative"}, "strategy.pruning.amount"),
        ({"rewind_step": -1}, "strategy.pruning.rewind_step"),
    ],
)
def test_bad_schedule_names_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        PruningCallback(**kwargs)
    assert err.value.key == key


def test_run_reaches_the_schedule(make_cfg):
    """Sparsity after each mask update equals the cubic schedule at that step; metrics.json agrees."""
    metrics = train(make_cfg(*SHORT, "strategy.pruning.final_sparsity=0.6"))
    sched = Schedule("cubic", 0, 30, 10, 0.0, 0.6)
    history = metrics["pruning"]["history"]
    assert [h[0] for h in history] == [0, 10, 20, 30]
    for step, measured in history:
        assert measured == pytest.approx(sched.sparsity_at(step), abs=1e-3)
    assert metrics["params"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert metrics["pruning"]["global_sparsity"] == pytest.approx(metrics["params"]["sparsity"])
    assif = metrics["pruning"]["layers"]
    assert all(v["sparsity"] == pytest.approx(0.6, abs=1e-3) for v in assif.values())


def test_epoch_bounds_convert_to_steps():
    s = Schedule("cubic", 0, 10, 5, 0.0, 0.5).with_steps_per_epoch(20, start_epoch=5, end_epoch=20)
    assert (s.start_step, s.end_step) == (100, 400)
    with pytest.raises(ConfigError) as err:
        Schedule("cubic", 0, 10, 5, 0.0, 0.5).with_steps_per_epoch(20, start_epoch=5, end_epoch=5)
    assert err.value.key == "strategy.pruning.end_step"
