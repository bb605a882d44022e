"""The sweep report counts jobs that never started: a job of the sweep's plan (multirun.yaml) with no
directory is listed as ``not started``, with the count in summary.md."""

from __future__ import annotations

import json

import yaml

from peftlab.reporting.sweep_report import collect_rows, planned_jobs, write_sweep_report


def make_sweep(root, sweeper: dict, task: list[str]) -> None:
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}, "seed": 1}))


def add_job(root, num: int, metrics: dict | None) -> None:
    (root / str(num) / ".hydra").mkdir(parents=True)
    (root / str(num) / ".hydra" / "overrides.yaml").write_text(f"- seed={num}\n")
    if metrics is not None:
        (root / str(num) / "metrics.json").write_text(json.dumps(metrics))


BASIC = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "max_batch_size": None, "params": None}


def test_a_planned_job_without_a_directory_is_listed_as_not_started(tmp_path):
    make_sweep(tmp_path, BASIC, ["seed=0,1,2", "trainer.max_epochs=1"])
    add_job(tmp_path, 0, {"status": "failed", "error": "boom"})
    add_job(tmp_path, 2, None)
    rows = collect_rows(tmp_path)
    assert [(r["job"], r["status"], r["error"]) for r in rows] == [
        ("0", "failed", "boom"),
        ("1", "not started", "no job directory: the job never started"),
        ("2", "missing", "no metrics.json: the job did not finish"),
    ]
    summary = write_sweep_report(tmp_path)["md"].read_text()
    assert "1 of 3 jobs never started (no job directory): 1." in summary and "2 of 3 jobs failed: 0, 2." in summary


def test_planned_jobs_counts_sweep_overrides_params_and_optuna_trials(tmp_path):
    make_sweep(tmp_path, {**BASIC, "params": {"model.optimizer.lr": "0.1,0.01"}}, ["seed=range(3)", "data=digits"])
    assert planned_jobs(tmp_path) == 6
    make_sweep(tmp_path, {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "n_trials": 4}, [])
    assert planned_jobs(tmp_path) == 4
    make_sweep(tmp_path, {"_target_": "some.other.Sweeper"}, ["seed=1,2"])
    assert planned_jobs(tmp_path) is None
    (tmp_path / "multirun.yaml").unlink()
    assert planned_jobs(tmp_path) is None


def test_an_interrupted_job_says_where_it_stopped(tmp_path):
    add_job(tmp_path, 0, {"status": "interrupted", "stopped": {"signal": "SIGTERM", "epoch": 1, "global_step": 6, "ckpt_step": 6}})
    (row,) = collect_rows(tmp_path)
    assert (row["status"], row["error"]) == ("interrupted", "interrupted by SIGTERM at global step 6")
