"""Bad-input catalogue, training values: the optimizer's settings, the seed, the epoch/step budget and
validation interval, misspelt config groups, and a pruned checkpoint resumed without pruning.

Each case runs the real command and must exit with status 2, print exactly one ``error: <key or
file>: ...`` line, print no traceback, and leave a finished run directory unchanged (see
tests/bad_input_harness.py).
"""

from __future__ import annotations

import pytest
import torch

from bad_input_harness import check_bad_input

# (id, script, args (with {tmp}, {run} placeholders), what the error line must name, files to write {name: content})
CASES = [
    ("max_epochs_zero", "train.py", ["trainer.max_epochs=0"], "trainer.max_epochs", {}),
    ("max_epochs_minus_one", "train.py", ["trainer.max_epochs=-1"], "trainer.max_epochs", {}),
    ("max_steps_zero", "train.py", ["+trainer.max_steps=0"], "trainer.max_steps", {}),
    ("lr_negative", "train.py", ["model.optimizer.lr=-1"], "model.optimizer.lr", {}),
    ("lr_nan", "train.py", ["model.optimizer.lr=nan"], "model.optimizer.lr", {}),
    ("lr_text", "train.py", ["model.optimizer.lr=fast"], "model.optimizer.lr", {}),
    ("weight_decay_negative", "train.py", ["model.optimizer.weight_decay=-1"], "model.optimizer.weight_decay", {}),
    ("seed_text", "train.py", ["seed=abc"], "seed", {}),
    ("seed_above_numpy_range", "train.py", ["seed=4294967296"], "seed", {}),
    ("seed_negative", "train.py", ["seed=-1"], "seed", {}),
    ("check_val_every_zero", "train.py", ["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch", {}),
    ("pruning_group_typo_plus", "train.py", ["+strategy/prunning=magnitude"], "strategy/prunning", {}),
    ("pruning_group_typo", "train.py", ["strategy/prunning=magnitude"], "strategy/prunning", {}),
    ("parent_group_typo", "train.py", ["+stratgy/pruning=magnitude"], "stratgy/pruning", {}),
    ("lr_inf", "train.py", ["model.optimizer.lr=inf"], "model.optimizer.lr", {}),
    ("weight_decay_nan", "train.py", ["model.optimizer.weight_decay=nan"], "model.optimizer.weight_decay", {}),
    ("seed_fraction", "train.py", ["seed=1.5"], "seed", {}),
    ("check_val_every_text", "train.py", ["trainer.check_val_every_n_epoch=often"], "trainer.check_val_every_n_epoch", {}),
    ("max_epochs_fraction", "train.py", ["trainer.max_epochs=1.5"], "trainer.max_epochs", {}),
    ("clipping_group_typo_plus", "train.py", ["+strategy/cliping=norm"], "strategy/cliping", {}),
    ("weighting_group_typo_plus", "train.py", ["+strategy/weighing=pcgrad"], "strategy/weighing", {}),
    ("batch_size_negative", "train.py", ["data.batch_size=-4"], "data.batch_size", {}),
    ("accumulate_zero", "train.py", ["strategy/weighting=pcgrad", "trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches", {}),
    ("max_bad_steps_zero", "train.py", ["strategy.clipping.max_bad_steps=0"], "strategy.clipping.max_bad_steps", {}),
    ("scheduler_interval_text", "train.py", ["model.scheduler_interval=batch"], "model.scheduler_interval", {}),
]


CASES = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_training_value_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path):
    check_bad_input(case, finished_run, tmp_path)


@pytest.mark.slow
def test_a_pruned_checkpoint_resumed_without_pruning_is_refused(finished_run, tmp_path):
    # the finished run's checkpoint, made to look pruned: half of its first layer masked, and its
    # stored config naming a pruning schedule (what a strategy=prune_share run writes)
    ckpt = torch.load(finished_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    key = next(k for k in state if k.startswith("body.") and k.endswith("weight") and state[k].ndim == 2)
    mask = (torch.rand_like(state[key]) > 0.5).float()
    state[key] = state[key] * mask
    state[key + "_mask"] = mask
    ckpt["peftlab_config"]["strategy"]["pruning"] = {"_target_": "peftlab.callbacks.pruning.MagnitudePruning", "final_sparsity": 0.5}
    torch.save(ckpt, tmp_path / "pruned.ckpt")
    check_bad_input(("pruned_resume", "train.py", ["ckpt_path={tmp}/pruned.ckpt"], "strategy.pruning", {}), finished_run, tmp_path)
