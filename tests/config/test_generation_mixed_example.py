"""``python train.py experiment=generation_mixed`` (causal-LM tasks and a classification head on one decoder)
as the README writes it, shrunk to a few steps, with each sharing policy and a gradient weighting method."""

from __future__ import annotations

import pytest

from conftest import metrics_files, read_json, run_cli

SMALL = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=4",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.sources.reverse.train=64",
    "data.sources.add.train=64",
    "data.sources.reverse.test=20",
    "data.sources.add.test=20",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy",
    [[], ["strategy/sharing=task_lora", "strategy/weighting=pcgrad"], ["strategy/sharing=separate", "strategy/weighting=uncertainty"], ["strategy/sharing=peft", "strategy/weighting=famo"]],
    ids=["full_equal", "task_lora_pcgrad", "separate_uncertainty", "lora_famo"],
)
def test_causal_lm_and_classification_tasks_train_on_one_decoder(tmp_path, strategy):
    proc = run_cli("train.py", "experiment=generation_mixed", *SMALL, *strategy, f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = metrics_files(tmp_path / "logs")
    metrics = read_json(path)
    assert metrics["status"] == "completed" and set(metrics["tasks"]) == {"reverse", "add", "parity"}
    assert set(metrics["tasks"]["parity"]) == {"acc"} and 0.0 <= metrics["tasks"]["parity"]["acc"] <= 1.0
    for task in ("reverse", "add"):
        values = metrics["tasks"][task]
        assert set(values) == {"exact_match", "perplexity"} and 0.0 <= values["exact_match"] <= 1.0 and 1.0 < values["perplexity"] < 1e4
        if not strategy:  # the whole decoder trains: below a uniform guess over its 80 ids after 4 steps
            assert values["perplexity"] < 80
    assert set(metrics["alpha"]) == {"reverse", "add", "parity"}


@pytest.mark.slow
def test_a_classification_task_on_a_decoder_without_pooling_is_one_line_exit_2(tmp_path):
    proc = run_cli("train.py", "experiment=generation_mixed", *SMALL, "model.pooling=null", f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model.pooling: task 'parity' (classification) reads the decoder's pooled states"), proc.stderr[-2000:]
