"""Lightning's own checkpoint loads and saves say what they do: resuming and testing the best
checkpoint never print Lightning's "`weights_only` was not set, defaulting to `False`"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bad_input_harness import run_command

QUIET = "`weights_only` was not set"
SHORT = ["trainer.max_epochs=1", "++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1"]


@pytest.mark.slow
def test_fit_resume_and_best_checkpoint_test_never_default_weights_only(tmp_path: Path):
    first = tmp_path / "first"
    # mid-epoch checkpoints (callbacks.step_checkpoint), the best checkpoint tested at the end
    proc = run_command("train.py", [*SHORT, "callbacks.step_checkpoint.every_n_train_steps=1", f"hydra.run.dir={first}"], tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert QUIET not in proc.stdout + proc.stderr
    last = first / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["optimizer_states"]  # still a full checkpoint: resume is exact
    resumed = run_command("train.py", [*SHORT[1:], "trainer.max_epochs=2", f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'resumed'}"], tmp_path / "logs")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert QUIET not in resumed.stdout + resumed.stderr
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr
