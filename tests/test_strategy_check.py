"""Spawn/fork-based DDP is refused up front in one line naming ddp; ddp itself passes."""

import pytest

from peftlab.builders import check_distribution_strategy
from peftlab.errors import ConfigError


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_spawn_find_unused_parameters_true"])
def test_spawned_ranks_are_refused_naming_ddp(make_cfg, strategy):
    with pytest.raises(ConfigError) as err:
        check_distribution_strategy(make_cfg("trainer=ddp_sim", f"trainer.strategy={strategy}"))
    assert err.value.key == "trainer.strategy"
    assert str(err.value).startswith(f"trainer.strategy: {strategy} starts its ranks") and "use trainer.strategy=ddp " in str(err.value)


def test_a_strategy_object_with_spawn_is_refused(make_cfg):
    cfg = make_cfg("trainer=ddp_sim", "~trainer.strategy", "+trainer.strategy._target_=lightning.pytorch.strategies.DDPStrategy", "+trainer.strategy.start_method=spawn")
    with pytest.raises(ConfigError, match=r"^trainer.strategy: lightning.pytorch.strategies.DDPStrategy\(start_method=spawn\)"):
        check_distribution_strategy(cfg)


@pytest.mark.parametrize("overrides", [[], ["trainer=ddp_sim"], ["trainer=ddp_sim", "trainer.strategy=ddp_find_unused_parameters_true"]])
def test_ddp_and_single_process_pass(make_cfg, overrides):
    check_distribution_strategy(make_cfg(*overrides))  # no error
