"""`-m hparams_search=optuna`: a search over sparsity x α that records the best and can continue."""

from __future__ import annotations

import optuna
import pytest
import yaml

from conftest import read_json, run_cli

pytestmark = pytest.mark.slow

QUICK = [
    "debug=limit_batches",
    "trainer.max_epochs=1",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "strategy.pruning.start_step=1",
    "strategy.pruning.end_step=4",
    "strategy.pruning.every_n_steps=1",
]


def test_optuna_search_records_the_best_trial_and_continues(tmp_path):
    result = run_cli("train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=4", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "debug" / "multiruns").iterdir()
    jobs = [read_json(p) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(jobs) == 4 and all(j["status"] == "completed" for j in jobs)
    for job in jobs:  # every trial searched both levers inside their ranges
        assert 0.3 <= job["config"]["strategy"]["pruning"]["final_sparsity"] <= 0.9
        assert job["params"]["sparsity"] > 0.25
        assert job["config"]["strategy"]["weighting"]["alpha"] in ([1, 1, 1], [2, 1, 1], [1, 2, 1], [1, 1, 2])
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [j["optimized_metric"]["value"] for j in jobs]
    assert best["best_value"] == max(values)
    winner = jobs[values.index(max(values))]["config"]["strategy"]
    assert best["best_params"]["strategy.pruning.final_sparsity"] == winner["pruning"]["final_sparsity"]
    assert yaml.safe_load(best["best_params"]["strategy.weighting.alpha"]) == winner["weighting"]["alpha"]
    assert (sweep / "summary.md").is_file()  # the sweep report joins the trials too

    # the study is stored in <log dir>/optuna.db: the same command again continues it
    again = run_cli("train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", *QUICK, log_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="debug-sparsity-alpha", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 5
    assert study.best_value >= best["best_value"]
