"""Exact resume on the decoder path: ``experiment=generation_mixed`` (causal-LM tasks and a classification
head on one decoder) SIGKILLed mid-epoch and resumed from last.ckpt ends with the same weights, weighting
state and optimizer state as the uninterrupted run (1e-6), full fine-tuning with uncertainty weighting and per-task LoRA with PCGrad."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_resume_exact import _kill_mid_epoch, _state

from peftlab.train import train

EPOCHS, BATCHES, EVERY = 2, 4, 1  # 2 epochs of 4 batches, a checkpoint every optimizer step
SMALL = [
    "experiment=generation_mixed",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    f"trainer.max_epochs={EPOCHS}",
    f"++trainer.limit_train_batches={BATCHES}",
    f"callbacks.step_checkpoint.every_n_train_steps={EVERY}",
    "++trainer.limit_val_batches=1",
    "data.sources.reverse.train=64",
    "data.sources.add.train=64",
    "data.sources.reverse.test=20",
    "data.sources.add.test=20",
    "data.sampling=uniform",  # every task in the first steps (the 1,500-row parity file would fill them)
]
CASES = {
    "full_uncertainty": ["strategy/weighting=uncertainty"],
    "task_lora_pcgrad": ["strategy/sharing=task_lora", "strategy/weighting=pcgrad"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_decoder_run_killed_mid_epoch_resumes_exactly(make_cfg, tmp_path, case):
    overrides = [*SMALL, *CASES[case], f"paths.data_dir={tmp_path / 'data'}"]
    full = train(make_cfg(*overrides, fast=False))
    last = _kill_mid_epoch(overrides, tmp_path / "killed", 6)
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 6 and 6 % BATCHES != 0  # really mid-epoch (epoch 2, batch 2)
    resumed = train(make_cfg(*overrides, f"ckpt_path={last}", fast=False))
    a = _state(Path(full["run_dir"]) / "checkpoints" / "last.ckpt")
    b = _state(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and any("lora_" in k for k in a) == ("lora" in case)
    if case == "full_uncertainty":  # each task's log-variance moved: every task trained before the kill
        assert bool((a["model/weighting.log_vars"] != 0).all())
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0, equal_nan=True), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
    # (α is compared in the state above: metrics.json's comes from the best checkpoint, which the resumed run,
    # writing to another directory, chooses among its own epochs only)
