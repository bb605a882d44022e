"""Schedules: the cubic/linear/iterative/one-shot formulas, and the sparsity a run really reaches."""

import pytest

from peftlab.callbacks.pruning import PruningCallback
from peftlab.errors import ConfigError
from peftlab.pruning import Schedule
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


def test_fractions_of_the_run_become_steps():
    s = Schedule("cubic", 0.1667, 0.6667, 0.0333, 0.0, 0.5).resolve(600)
    assert (s.start_step, s.end_step, s.every_n_steps) == (100, 400, 20)
    short = Schedule("cubic", 0.1667, 0.6667, 0.0333, 0.0, 0.5).resolve(60)
    assert (short.start_step, short.end_step, short.every_n_steps) == (10, 40, 2)
    tiny = Schedule("cubic", 0.4, 0.6, 0.0333, 0.0, 0.5).resolve(2)  # both round to step 1
    assert (tiny.start_step, tiny.end_step, tiny.every_n_steps) == (1, 2, 1)
    mixed = Schedule("linear", 10, 0.5, 5, 0.0, 0.5).resolve(100)  # an int stays a step
    assert (mixed.start_step, mixed.end_step) == (10, 50)


@pytest.mark.parametrize(
    "args, total, key, text",
    [
        (("cubic", 0.1, 1.5, 5), 100, "strategy.pruning.end_step", "a float is a fraction"),
        (("cubic", 0.1, 0.5, 5), float("inf"), "strategy.pruning.start_step", "no step limit"),
        (("cubic", 10, 500, 5), 100, "strategy.pruning.end_step", "must be <= the run's 100 optimizer steps"),
        (("cubic", 0.5, 40, 5), 100, "strategy.pruning.end_step", "must be > start_step (50)"),
        (("cubic", 0.1, 0.5, True), 100, "strategy.pruning.every_n_steps", "got True"),
    ],
)
def test_bad_fractions_name_the_key(args, total, key, text):
    with pytest.raises(ConfigError) as err:
        Schedule(*args, 0.0, 0.5).resolve(total)
    assert err.value.key == key and text in str(err.value)


def test_fractional_schedule_needs_resolving():
    with pytest.raises(RuntimeError, match="resolve"):
        Schedule("cubic", 0.1, 0.5, 5).sparsity_at(3)


def test_iterative_jump_to_final_sparsity_is_documented_and_warned(make_cfg):
    it = Schedule("iterative", 0, 30, 10, 0.0, 0.5, amount=0.1)
    assert it.iterative_shortfall() == pytest.approx(0.2)  # updates at 0, 10, 20 reach 0.3 only
    assert [it.sparsity_at(t) for t in (0, 10, 20, 30)] == pytest.approx([0.1, 0.2, 0.3, 0.5])
    assert Schedule("iterative", 0, 30, 10, 0.0, 0.3, amount=0.1).iterative_shortfall() == 0.0
    cfg = make_cfg(*SHORT, "strategy.pruning.schedule=iterative", "strategy.pruning.amount=0.1")
    with pytest.warns(UserWarning, match="jumps to final_sparsity=0.5"):
        train(cfg)
