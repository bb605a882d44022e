"""``strategy.pruning.calibration.seed``: a different, reproducible set of calibration batches; the training order untouched."""

from __future__ import annotations

import pytest
import torch

from peftlab.callbacks.calibration_batches import calibration_batches, check_calibration
from peftlab.data import DigitsSource, MultiTaskDataModule
from peftlab.errors import ConfigError

TASKS = [{"name": "digit", "label": "digit", "num_classes": 10}, {"name": "parity", "label": "parity", "num_classes": 2}]


def datamodule(mode: str = "joint") -> MultiTaskDataModule:
    return MultiTaskDataModule(DigitsSource(), TASKS, batch_size=16, seed=3, mode=mode)


def inputs(batches) -> torch.Tensor:
    return torch.cat([b["inputs"] for b in batches])


@pytest.mark.parametrize("mode", ["joint", "mixed"])
def test_two_seeds_draw_different_batches_and_one_seed_the_same_twice(mode):
    dm = datamodule(mode)
    zero, again, one = (calibration_batches(dm, 4, seed) for seed in (0, 0, 1))
    assert len(zero) == 4 and inputs(zero).shape == (64, 64)
    assert torch.equal(inputs(zero), inputs(again))
    assert not torch.equal(inputs(zero), inputs(one))
    assert not torch.equal(inputs(zero), inputs(calibration_batches(dm, 4)))  # seed null: the data order (data.seed 3)


def test_a_resumed_run_draws_the_same_batches_and_training_order_is_untouched():
    first = calibration_batches(datamodule(), 3, seed=2)
    resumed = datamodule()
    train = resumed.train_dataloader()
    train.sampler.set_epoch(4)  # a run resumed in its fifth epoch, 7 batches in
    train.sampler.resume_at(4, 7)
    assert torch.equal(inputs(calibration_batches(resumed, 3, seed=2)), inputs(first))
    assert train.sampler.seed == 3 and train.sampler.epoch == 4  # the training loader's sampler was copied, not reseeded
    fresh = datamodule().train_dataloader()
    fresh.sampler.set_epoch(4)
    assert torch.equal(next(iter(train))["inputs"], list(fresh)[7]["inputs"])


def test_seed_null_keeps_todays_first_batches():
    dm = datamodule()
    assert torch.equal(inputs(calibration_batches(dm, 2)), inputs(list(dm.train_dataloader())[:2]))


def test_bad_seed_and_unseedable_loader_name_the_key():
    assert check_calibration({"seed": 5}) == {"batches": 16, "seed": 5}
    assert check_calibration(None) == {"batches": 16, "seed": None}
    with pytest.raises(ConfigError, match=r"strategy\.pruning\.calibration\.seed"):
        check_calibration({"seed": -1})
    with pytest.raises(ConfigError, match=r"strategy\.pruning\.calibration\.seed"):
        check_calibration({"seed": 0.5})
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(8, 2)), batch_size=2)
    with pytest.raises(ConfigError, match=r"strategy\.pruning\.calibration\.seed"):
        calibration_batches(loader, 2, seed=1)
    assert len(calibration_batches(loader, 2)) == 2
