"""The non-finite guard checks the weighted total, not only each task's loss."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from peftlab.clipping import NormClipping, PerTaskClipping
from peftlab.clipping.guard import NonFiniteError
from peftlab.models import MLPBackbone, MultiTaskModule
from peftlab.tasks import TaskSpec
from peftlab.weighting import UncertaintyWeighting

TASKS = [TaskSpec(name="a", label="a", num_classes=2), TaskSpec(name="b", label="b", num_classes=0)]


def batches(n: int = 12) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(8, 4, generator=gen)
        y = torch.stack([(x[:, 0] > 0).float(), x[:, 1]], dim=1)
        out.append({"inputs": x, "y": y, "task_mask": torch.ones(8, 2, dtype=torch.bool)})
    return out


def module(clipping) -> MultiTaskModule:
    torch.manual_seed(0)
    weighting = UncertaintyWeighting()
    model = MultiTaskModule(functools.partial(MLPBackbone, input_shape=[4], hidden_dims=[8]), TASKS, weighting=weighting, clipping=clipping)
    with torch.no_grad():
        weighting.log_vars.fill_(float("inf"))  # every task loss finite, the total exp(-inf) * L + inf is not
    return model


@pytest.mark.parametrize("clipping", [NormClipping(max_bad_steps=100), PerTaskClipping(max_bad_steps=100)], ids=["automatic", "per_task"])
def test_an_infinite_weighted_total_is_skipped_and_counted(clipping):
    model = module(clipping)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=DataLoader(batches(12), batch_size=None))
    assert model.guard.skipped == 12  # was 0: 12 of 12 steps trained on inf
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("heads.target_scaling")), "a skipped step moved a weight"


def test_too_many_infinite_totals_in_a_row_stop_the_run():
    model = module(NormClipping(max_bad_steps=3))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(NonFiniteError, match="weighted total"):
        trainer.fit(model, train_dataloaders=DataLoader(batches(12), batch_size=None))
    assert model.guard.skipped == 3
