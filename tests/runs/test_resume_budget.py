"""Resuming to train longer: the learning-rate schedule follows the new budget (never a silent
lr 0), says so in one log line, and the learning rate of every param group reaches the loggers."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch

from peftlab.train import train
from pruning_helpers import Crash, one_thread  # noqa: F401

BATCHES = 4
LR = 0.002  # configs/model/mlp.yaml
QUIET = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    f"+trainer.limit_train_batches={BATCHES}",
    "trainer.log_every_n_steps=1",
]


def logged_lr(run_dir: str) -> dict[int, float]:
    """{step: lr} of the single param group, as the CSV logger wrote it."""
    (path,) = Path(run_dir).rglob("metrics.csv")
    rows = list(csv.DictReader(path.open()))
    return {int(r["step"]): float(r["lr-AdamW"]) for r in rows if r.get("lr-AdamW")}


def weights(run_dir: str) -> dict[str, torch.Tensor]:
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_resume_with_more_epochs_follows_the_new_cosine_budget(make_cfg, caplog):
    first = train(make_cfg(*QUIET, "trainer.max_epochs=1", fast=False))
    lrs = logged_lr(first["run_dir"])
    assert sorted(lrs) == list(range(BATCHES)) and set(lrs.values()) == {LR}  # the 1-epoch cosine: LR during epoch 1
    last = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"

    with caplog.at_level(logging.INFO):
        longer = train(make_cfg(*QUIET, "trainer.max_epochs=2", f"ckpt_path={last}", fast=False))
    lines = [r.getMessage() for r in caplog.records if "now follows the new budget" in r.getMessage()]
    assert len(lines) == 1 and "max_epochs 1 -> 2" in lines[0] and "CosineAnnealingLR" in lines[0], lines
    second_epoch = logged_lr(longer["run_dir"])
    assert sorted(second_epoch) == list(range(BATCHES, 2 * BATCHES))
    expected = LR * (1 + math.cos(math.pi * 1 / 2)) / 2  # what a 2-epoch cosine run has in its second epoch
    assert all(abs(lr - expected) < 1e-12 for lr in second_epoch.values()), second_epoch
    a, b = weights(first["run_dir"]), weights(longer["run_dir"])
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point() and a[k].numel()) > 1e-4

    # a checkpoint written before this callback existed (no budget in it): the scheduler's own T_max tells
    old = last.with_name("old.ckpt")
    ckpt = torch.load(last, weights_only=True)
    ckpt["callbacks"] = {k: v for k, v in ckpt["callbacks"].items() if "LRScheduleFollowsBudget" not in k}
    torch.save(ckpt, old)
    from_old = train(make_cfg(*QUIET, "trainer.max_epochs=2", f"ckpt_path={old}", fast=False))
    assert all(abs(lr - expected) < 1e-12 for lr in logged_lr(from_old["run_dir"]).values())

    # what the callback prevents: the restored 1-epoch schedule trains the second epoch at lr 0
    silent = train(make_cfg(*QUIET, "trainer.max_epochs=2", f"ckpt_path={last}", "callbacks.lr_schedule_budget=null", fast=False))
    assert set(logged_lr(silent["run_dir"]).values()) == {0.0}
    c = weights(silent["run_dir"])
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_with_the_same_budget_is_left_alone(make_cfg, caplog):
    """A killed 2-epoch run resumed as a 2-epoch run: no adjustment, the uninterrupted schedule."""
    crashing = make_cfg(*QUIET, "trainer.max_epochs=2", "+callbacks.crash._target_=pruning_helpers.CrashAtEpoch", "+callbacks.crash.epoch=1", fast=False)
    with pytest.raises(Crash):
        train(crashing)
    last = Path(crashing.paths.output_dir) / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.INFO):
        resumed = train(make_cfg(*QUIET, "trainer.max_epochs=2", f"ckpt_path={last}", fast=False))
    assert not [r for r in caplog.records if "now follows the new budget" in r.getMessage()]
    lrs = logged_lr(resumed["run_dir"])
    assert sorted(lrs) == list(range(BATCHES, 2 * BATCHES)) and set(lrs.values()) == {LR / 2}


PRUNE = ["strategy=prune_share", "strategy/pruning=magnitude", "strategy.pruning.start_step=0.25", "strategy.pruning.end_step=0.75", "strategy.pruning.every_n_steps=1"]


# (epochs planned, epoch at which the first run dies or None, epochs of the resumed run)
BUDGETS = {
    "longer": (2, None, 4),  # finished at final sparsity (step 6 of 8); the 4-epoch schedule ends at step 12
    "shorter-past-the-new-end": (8, 4, 5),  # killed at step 16 mid-schedule (end 24); the 5-epoch one ends at 15
}


@pytest.mark.parametrize("budget", list(BUDGETS))
def test_resume_with_another_budget_moves_the_pruning_schedule_without_unpruning(make_cfg, caplog, budget):
    """Fractions of the run re-resolve under the new budget, one line says so, sparsity never drops
    and the run still ends at the final sparsity (also when it resumes past the new end_step)."""
    planned, dies_at, then = BUDGETS[budget]
    crash = ["+callbacks.crash._target_=pruning_helpers.CrashAtEpoch", f"+callbacks.crash.epoch={dies_at}"] if dies_at else []
    cfg = make_cfg(*QUIET, *PRUNE, f"trainer.max_epochs={planned}", *crash, fast=False)
    if crash:
        with pytest.raises(Crash):
            train(cfg)
    else:
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=False)
    (state,) = [v for k, v in before["callbacks"].items() if k.startswith("PruningCallback")]
    with caplog.at_level(logging.INFO):
        resumed = train(make_cfg(*QUIET, *PRUNE, f"trainer.max_epochs={then}", f"ckpt_path={last}", fast=False))
    lines = [r.getMessage() for r in caplog.records if "strategy.pruning schedule now follows the new budget" in r.getMessage()]
    new_end = round(0.75 * then * BATCHES)
    assert len(lines) == 1 and f"end_step {state['schedule']['end_step']} -> {new_end}" in lines[0], lines
    history = resumed["pruning"]["history"]
    sparsities = [s for _, s in history]
    assert all(b >= a - 1e-9 for a, b in zip(sparsities, sparsities[1:])), history  # never un-pruned
    assert sparsities[-1] == pytest.approx(0.5, abs=1e-3), history  # final_sparsity of strategy=prune_share
    assert len(history) > len(state["history"]), history  # masks were updated after the resume
