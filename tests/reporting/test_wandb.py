"""`logger=wandb` without an API key: offline runs that hold what the dashboard needs."""

from __future__ import annotations

import pytest

from conftest import metrics_files, read_json, run_cli
from peftlab.runs.run_identity import logger_run_id
from wandb_records import offline_run

PRUNE = ["strategy=prune_share", "strategy.pruning.start_step=2", "strategy.pruning.end_step=8", "strategy.pruning.every_n_steps=2"]
QUICK = ["debug=limit_batches", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.mark.slow
def test_wandb_offline_sweep_logs_keys_tables_and_plots(tmp_path):
    result = run_cli("train.py", "-m", "logger=wandb", *QUICK, *PRUNE, "strategy.pruning.final_sparsity=0.3,0.6", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no W&B API key found: logging offline" in result.stdout
    jobs = [p.parent for p in metrics_files(tmp_path)]
    assert len(jobs) == 2
    runs, groups = [], set()
    for job in jobs:
        metrics = read_json(job / "metrics.json")
        (run_dir,) = (job / "wandb").glob("offline-run-*")  # one W&B run per job
        run = offline_run(run_dir)
        runs.append(run["run"].run_id)
        assert run["run"].run_id == logger_run_id(job)  # from the run dir: a requeued job continues it
        groups.add(run["run"].run_group)
        assert run["run"].job_type == "debug" and set(run["run"].tags) == {"prune_share", "debug"}
        # the resolved config, per-task metrics, α, sparsity and gradient norms over time
        assert {"data", "model", "strategy", "trainer", "seed"} <= run["config"]
        assert {"alpha/digit", "alpha/parity", "alpha/high", "train/grad_norm", "train/digit/loss", "pruning/sparsity", "val/score", "test/digit/acc", "test/parity/f1"} <= run["history"]
        # the final report: summary numbers equal metrics.json, the table and the plots as images
        summary = run["summary"]
        assert summary["score"] == metrics["score"] and summary["params/sparsity"] == metrics["params"]["sparsity"]
        assert summary["final_alpha/digit"] == metrics["alpha"]["digit"]
        assert summary["final_test/digit/acc"] == metrics["tasks"]["digit"]["acc"]
        assert summary["summary/test_metrics/nrows"] == 6  # 3 tasks x (acc, f1)
        images = [m for m in run["media"] if m.startswith("images/plots/")]
        assert {m.split("/")[-1].split("_")[0] for m in images} == {"alpha", "sparsity"}  # alpha.png, sparsity_per_layer.png
        assert any(m.startswith("table/summary/test_metrics") for m in run["media"])
    assert len(set(runs)) == 2
    (group,) = groups  # both jobs in one group named after the sweep
    assert group == f"debug-{jobs[0].parent.name}"
