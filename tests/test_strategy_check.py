"""Spawn/fork-based DDP runs as the matching popen ``ddp`` strategy, with one line saying so; ddp itself is left alone."""

import pytest
from lightning.pytorch.strategies import DDPStrategy

from peftlab.builders import popen_strategy


@pytest.mark.parametrize(
    ("strategy", "runs_as"),
    [("ddp_spawn", "ddp"), ("ddp_fork", "ddp"), ("ddp_notebook", "ddp"), ("ddp_spawn_find_unused_parameters_true", "ddp_find_unused_parameters_true")],
)
def test_spawned_ranks_run_as_ddp_with_one_line(make_cfg, capsys, strategy, runs_as):
    assert popen_strategy(make_cfg("trainer=ddp_sim", f"trainer.strategy={strategy}")) == runs_as
    assert capsys.readouterr().out.strip() == f"trainer.strategy={strategy}: running it as {runs_as} (ranks start as copies of the command, so each reports what it trained)"


def test_a_strategy_object_with_spawn_starts_its_ranks_with_popen(make_cfg):
    cfg = make_cfg("trainer=ddp_sim", "~trainer.strategy", "+trainer.strategy._target_=lightning.pytorch.strategies.DDPStrategy", "+trainer.strategy.start_method=spawn")
    strategy = popen_strategy(cfg)
    assert isinstance(strategy, DDPStrategy) and strategy._start_method == "popen"


@pytest.mark.parametrize("overrides", [[], ["trainer=ddp_sim"], ["trainer=ddp_sim", "trainer.strategy=ddp_find_unused_parameters_true"]])
def test_ddp_and_single_process_are_left_alone(make_cfg, overrides):
    assert popen_strategy(make_cfg(*overrides)) is None
