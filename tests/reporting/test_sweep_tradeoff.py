"""The sweep report's trade-off view: Pareto front, one line per α setting, failed jobs with their error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from peftlab.reporting.sweep_report import write_sweep_report
from peftlab.reporting.tradeoff_plot import pareto_front, setting_groups


def _job(sweep: Path, num: int, overrides: list[str], score: float | None, nonzero: int = 0, sparsity: float = 0.0) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if score is None:
        metrics = {"status": "failed", "error": "strategy.pruning.final_sparsity: must be in [0, 1); got 1.5"}
    else:
        metrics = {
            "status": "completed",
            "score": score,
            "tasks": {"a": {"acc": score}},
            "params": {"sparsity": sparsity, "nonzero": nonzero, "trainable": 100},
            "alpha": {"a": 1.0},
            "timing": {"fit_s": 1.0},
            "config": {"data": {"tasks": [{"name": "a", "metric": "acc"}]}},
        }
    (job / "metrics.json").write_text(json.dumps(metrics))


def test_pareto_front_keeps_only_jobs_nothing_beats():
    rows = [
        {"job": "0", "score": 0.90, "nonzero_params": 1000},
        {"job": "1", "score": 0.85, "nonzero_params": 500},
        {"job": "2", "score": 0.80, "nonzero_params": 700},  # beaten by job 1 (better and smaller)
        {"job": "3", "score": 0.70, "nonzero_params": 200},
        {"job": "4", "status": "failed"},
    ]
    assert [r["job"] for r in pareto_front(rows)] == ["3", "1", "0"]


def test_groups_split_by_every_swept_setting_but_sparsity():
    rows = [
        {"overrides": "strategy.pruning.final_sparsity=0.3 strategy.weighting.alpha=[1,1,1]", "score": 1.0},
        {"overrides": "strategy.pruning.final_sparsity=0.6 strategy.weighting.alpha=[1,1,1]", "score": 1.0},
        {"overrides": "strategy.pruning.final_sparsity=0.3 strategy.weighting.alpha=[2,1,1]", "score": 1.0},
    ]
    groups = setting_groups(rows)
    assert sorted(groups) == ["strategy.weighting.alpha=[1,1,1]", "strategy.weighting.alpha=[2,1,1]"]
    assert len(groups["strategy.weighting.alpha=[1,1,1]"]) == 2


def test_report_writes_tradeoff_plot_front_and_failed_errors(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["strategy.pruning.final_sparsity=0.3", "strategy.weighting.alpha=[1,1,1]"], 0.95, nonzero=700, sparsity=0.3)
    _job(sweep, 1, ["strategy.pruning.final_sparsity=0.6", "strategy.weighting.alpha=[1,1,1]"], 0.93, nonzero=400, sparsity=0.6)
    _job(sweep, 2, ["strategy.pruning.final_sparsity=0.6", "strategy.weighting.alpha=[2,1,1]"], 0.90, nonzero=400, sparsity=0.6)
    _job(sweep, 3, ["strategy.pruning.final_sparsity=1.5", "strategy.weighting.alpha=[2,1,1]"], None)
    paths = write_sweep_report(sweep)
    png = paths["tradeoff"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = paths["md"].read_text()
    assert "Pareto front" in md and "job 1 (0.9300, 400 non-zero)" in md and "job 0 (0.9500, 700 non-zero)" in md
    assert "job 2 (0.9000" not in md.split("Pareto front")[1].split("\n")[0]  # beaten by job 1
    assert "1 of 4 jobs failed: 3." in md and "final_sparsity: must be in [0, 1); got 1.5" in md.split("jobs failed")[1]


def test_single_job_has_no_tradeoff_plot(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["seed=1"], 0.9, nonzero=10)
    paths = write_sweep_report(sweep)
    assert "tradeoff" not in paths and not (sweep / "tradeoff.png").exists()
