"""A group path that does not exist is refused, with or without ``+`` (it used to train without pruning)."""

from __future__ import annotations

import pytest

from conftest import ROOT
from peftlab.config.group_options import unknown_group_option

CONFIGS = str(ROOT / "configs")


@pytest.mark.parametrize("arg", ["+strategy/prunning=magnitude", "strategy/prunning=magnitude", "++strategy/prunning=magnitude"])
def test_a_misspelt_group_is_one_line_with_the_closest_match(arg):
    line = unknown_group_option(CONFIGS, [arg])
    assert line is not None and line.startswith("strategy/prunning: not a config group; did you mean strategy/pruning?"), line
    assert "strategy/weighting" in line  # the group's known names


def test_a_misspelt_parent_group_names_the_top_level_groups():
    line = unknown_group_option(CONFIGS, ["+stratgy/pruning=magnitude"])
    assert line is not None and "did you mean strategy?" in line


@pytest.mark.parametrize("args", [["strategy/pruning=magnitude"], ["+strategy/pruning=magnitude"], ["strategy/weighting=dwa,fixed"], ["hydra/launcher=slurm"], ["+new_key=1"]])
def test_existing_groups_and_new_keys_pass(args):
    assert unknown_group_option(CONFIGS, args) is None
