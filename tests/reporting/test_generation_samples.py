"""Sample generations of causal-LM tasks: written to the run dir after validation and test, and to W&B
as a table; the text metrics in metrics.json are those of the decoded samples (all test rows here)."""

from __future__ import annotations

import json

import pytest
from torchmetrics.functional.text import chrf_score, rouge_score

from conftest import metrics_files, read_json, run_cli
from wandb_records import offline_run

SMALL = [
    "experiment=generation_toy",
    "trainer.max_epochs=1",
    "trainer.check_val_every_n_epoch=1",
    "++trainer.limit_train_batches=3",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.sources.reverse.train=64",
    "data.sources.add.train=64",
    "data.sources.reverse.validation=10",
    "data.sources.add.validation=10",
    "data.sources.reverse.test=12",
    "data.sources.add.test=12",
    "generation_samples=12",
    "data.tasks.0.metric=rouge_l",
    "data.tasks.0.metrics=[rouge_l,chrf,bleu,exact_match]",
    "data.tasks.1.metrics=[exact_match,chrf]",
]


@pytest.mark.slow
def test_samples_land_in_the_run_dir_and_a_wandb_table_and_match_the_text_metrics(tmp_path):
    proc = run_cli("train.py", *SMALL, "logger=wandb", f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = metrics_files(tmp_path / "logs")
    metrics, run_dir = read_json(path), path.parent
    assert set(metrics["tasks"]["reverse"]) == {"rouge_l", "chrf", "bleu", "exact_match"} and set(metrics["tasks"]["add"]) == {"exact_match", "chrf"}
    assert metrics["score"] == pytest.approx((metrics["tasks"]["reverse"]["rouge_l"] + metrics["tasks"]["add"]["exact_match"]) / 2)
    for stage, rows in (("val", 10), ("test", 12)):
        lines = [json.loads(line) for line in (run_dir / "generations" / f"{stage}.jsonl").read_text().splitlines()]
        assert [r["task"] for r in lines] == ["reverse"] * rows + ["add"] * rows
        assert all(r["stage"] == stage and r["prompt"].endswith("=") and r["reference"].isdigit() for r in lines)
        assert all(r["prompt"].startswith("reverse ") for r in lines[:rows]) and all(r["reference"] == r["prompt"][8:-1][::-1] for r in lines[:rows])
    test = [json.loads(line) for line in (run_dir / "generations" / "test.jsonl").read_text().splitlines()]
    for task in ("reverse", "add"):  # every test row is sampled: the reported score is the samples' score
        gens, refs = [r["generation"] for r in test if r["task"] == task], [r["reference"] for r in test if r["task"] == task]
        assert metrics["tasks"][task]["chrf"] == pytest.approx(float(chrf_score(gens, [[r] for r in refs])), abs=1e-6)
        assert metrics["tasks"][task]["exact_match"] == pytest.approx(sum(g == r for g, r in zip(gens, refs)) / len(refs))
    assert metrics["tasks"]["reverse"]["rouge_l"] == pytest.approx(
        float(rouge_score(gens_rev := [r["generation"] for r in test[:12]], [r["reference"] for r in test[:12]], rouge_keys="rougeL")["rougeL_fmeasure"]), abs=1e-6
    )
    assert len(gens_rev) == 12
    (wandb_dir,) = (run_dir / "wandb").glob("offline-run-*")
    media = offline_run(wandb_dir)["media"]
    assert any(m.startswith("table/generations/val") for m in media) and any(m.startswith("table/generations/test") for m in media)


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["task_lora", "separate"])
def test_samples_of_per_task_models_come_from_each_tasks_own_adapter(tmp_path, sharing):
    """task_lora / separate: each task's samples generated through its own adapter / decoder (before, the
    first task's decoder or the last forward's row routing: a crash when the last batch was smaller),
    so the samples' chrF is the evaluated chrF of that task."""
    args = [a for a in SMALL if not a.startswith("data.sources.add.test")] + ["data.sources.add.test=5", "data.batch_size=8"]
    proc = run_cli("train.py", *args, f"strategy/sharing={sharing}", f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = metrics_files(tmp_path / "logs")
    metrics, run_dir = read_json(path), path.parent
    test = [json.loads(line) for line in (run_dir / "generations" / "test.jsonl").read_text().splitlines()]
    for task in ("reverse", "add"):
        gens, refs = [r["generation"] for r in test if r["task"] == task], [r["reference"] for r in test if r["task"] == task]
        assert metrics["tasks"][task]["chrf"] == pytest.approx(float(chrf_score(gens, [[r] for r in refs])), abs=1e-6)
