"""A pruned checkpoint resumed under a config that prunes nothing is refused (its pruned weights would grow back)."""

from __future__ import annotations

import pytest
import torch

from peftlab.checkpoints.pruned_resume import check_pruned_resume
from peftlab.errors import ConfigError

PRUNING = {"_target_": "peftlab.callbacks.pruning.MagnitudePruning", "final_sparsity": 0.5}


def checkpoint(path, masks: bool, pruning: dict | None):
    state = {"body.net.0.weight": torch.ones(2, 2), "body.net.0.bias": torch.zeros(2)}
    if masks:
        state["body.net.0.weight_mask"] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6.0", "peftlab_config": {"strategy": {"pruning": pruning or {}}}}, path)
    return str(path)


@pytest.mark.parametrize("masks, stored", [(True, PRUNING), (True, None), (False, PRUNING)], ids=["masks_and_config", "masks", "config"])
def test_a_pruned_checkpoint_needs_a_pruning_config(tmp_path, masks, stored):
    path = checkpoint(tmp_path / "pruned.ckpt", masks, stored)
    for current in (None, {}, {"name": "none"}):  # strategy/pruning=none composes to a mapping without _target_
        with pytest.raises(ConfigError) as err:
            check_pruned_resume(path, current)
        assert err.value.key == "strategy.pruning" and "pruned.ckpt" in str(err.value)
    check_pruned_resume(path, PRUNING)  # resumed with pruning: fine


def test_a_dense_checkpoint_resumes_without_pruning(tmp_path):
    check_pruned_resume(checkpoint(tmp_path / "dense.ckpt", masks=False, pruning=None), None)
