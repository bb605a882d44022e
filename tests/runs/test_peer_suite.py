"""lightning-hydra-template's own sweep and DDP tests, replayed through our command line, pass:
an Optuna search under ``fast_dev_run`` (no best checkpoint) returns each trial's last
``val/score``, and ``+trainer.strategy=ddp_spawn`` (their ``ddp_sim`` test) runs, as ``ddp``,
with one line saying so."""

from __future__ import annotations

import pytest
import yaml

from conftest import read_json, run_cli

pytestmark = pytest.mark.slow

QUICK = ["callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def test_optuna_sweep_under_fast_dev_run_returns_the_last_val_score(tmp_path):
    result = run_cli("train.py", "-m", "hparams_search=optuna", "++trainer.fast_dev_run=true", "hydra.sweeper.n_trials=2", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = [read_json(p) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(jobs) == 2 and all(j["status"] == "completed" for j in jobs)
    values = [j["optimized_metric"]["value"] for j in jobs]
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in values), values
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == max(values)


def test_ddp_spawn_runs_as_ddp_with_one_line(tmp_path):
    args = ["+trainer.strategy=ddp_spawn", "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1", *QUICK]
    result = run_cli("train.py", *args, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("trainer.strategy=")]
    assert lines == ["trainer.strategy=ddp_spawn: running it as ddp (ranks start as copies of the command, so each reports what it trained)"]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "completed" and metrics["tasks"]
