"""``model.scheduler_interval``: the learning-rate scheduler steps once per epoch (default) or once per
optimizer step, on both training paths; ``total_steps: null`` gets the run's optimizer steps."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from peftlab.errors import ConfigError
from peftlab.models import MLPBackbone, MultiTaskModule
from peftlab.tasks import TaskSpec
from peftlab.weighting import PCGradWeighting

TASKS = [TaskSpec(name="a", label="a", num_classes=2), TaskSpec(name="b", label="b", num_classes=2)]
LR = 0.01
ONE_CYCLE = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=LR, total_steps=None, pct_start=0.25, cycle_momentum=False)


def batches(n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(8, 4, generator=gen)
        y = torch.stack([(x[:, 0] > 0).long(), (x[:, 1] > 0).long()], dim=1)
        out.append({"inputs": x, "y": y, "task_mask": torch.ones(8, 2, dtype=torch.bool)})
    return out


class RecordLR(L.Callback):
    """The learning rate each training batch starts with."""

    def __init__(self):
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(scheduler, interval: str, epochs: int = 2, n_batches: int = 4, **module_kwargs) -> tuple[MultiTaskModule, list[float]]:
    """Train a tiny two-task MLP; the learning rate before each batch."""
    torch.manual_seed(0)
    optimizer = functools.partial(torch.optim.SGD, lr=LR)
    backbone = functools.partial(MLPBackbone, input_shape=[4], hidden_dims=[8])
    model = MultiTaskModule(backbone, TASKS, optimizer=optimizer, scheduler=scheduler, scheduler_interval=interval, **module_kwargs)
    record = RecordLR()
    trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[record])
    trainer.fit(model, train_dataloaders=DataLoader(batches(n_batches), batch_size=None))
    return model, record.lrs


def reference(scheduler, steps: int, repeat: int = 1) -> list[float]:
    """The learning rate ``scheduler`` gives before each of ``steps`` steps (each held ``repeat`` batches)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = scheduler(optimizer=optimizer)
    out = []
    for _ in range(steps):
        out += [optimizer.param_groups[0]["lr"]] * repeat
        optimizer.step()
        sched.step()
    return out


def test_a_step_interval_scheduler_steps_every_optimizer_step():
    model, lrs = fit(ONE_CYCLE, "step")
    scheduler = model.lr_schedulers()
    assert scheduler.total_steps == 8 and scheduler.last_epoch == 8  # null -> 2 epochs x 4 batches, stepped 8 times
    expected = reference(functools.partial(ONE_CYCLE, total_steps=8), 8)
    assert lrs == pytest.approx(expected, rel=1e-12) and len(set(lrs)) == 8  # a new rate every step: warm-up, then down
    assert max(lrs) == pytest.approx(LR) and lrs[0] == pytest.approx(LR / 25)


def test_the_default_epoch_interval_steps_once_per_epoch():
    cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=2)
    model, lrs = fit(cosine, "epoch")
    assert model.lr_schedulers().last_epoch == 2
    assert lrs == pytest.approx(reference(cosine, 2, repeat=4), rel=1e-12)  # 4 batches at each epoch's rate


def test_the_per_task_gradient_path_steps_per_optimizer_step_with_its_own_accumulation():
    model, lrs = fit(ONE_CYCLE, "step", epochs=2, n_batches=6, weighting=PCGradWeighting(), accumulate_grad_batches=2)
    assert not model.automatic_optimization
    scheduler = model.lr_schedulers()
    assert scheduler.total_steps == 6 and scheduler.last_epoch == 6  # 2 epochs x 6 micro-batches / 2
    assert lrs == pytest.approx(reference(functools.partial(ONE_CYCLE, total_steps=6), 6, repeat=2), rel=1e-12)


def test_a_bad_interval_names_the_key():
    with pytest.raises(ConfigError, match=r"^model.scheduler_interval: must be one of epoch, step; got 'batch'$"):
        MultiTaskModule(functools.partial(MLPBackbone, input_shape=[4], hidden_dims=[8]), TASKS, scheduler_interval="batch")


def test_total_steps_null_needs_the_step_interval():
    with pytest.raises(ConfigError, match=r"^model.scheduler.total_steps: null .* needs model.scheduler_interval=step$"):
        fit(ONE_CYCLE, "epoch")
