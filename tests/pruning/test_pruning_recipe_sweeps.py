"""Both pruning recipes swept over sparsity x criterion from the CLI: one job per pair, the sweep report with its Pareto plot."""

import pytest

from conftest import metrics_files, read_json, run_cli

QUIET = ["callbacks=model_checkpoint", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=1"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["oneshot_prune", "prune_recover"])
def test_recipe_sweeps_sparsity_by_criterion_into_one_report(tmp_path, recipe):
    res = run_cli("train.py", "-m", *QUIET, f"strategy={recipe}", "strategy.pruning.final_sparsity=0.5,0.7", "strategy/pruning=wanda,sparsegpt", log_dir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = [read_json(p) for p in metrics_files(tmp_path) if "/dense/" not in str(p)]
    pairs = sorted((j["pruning"]["criterion"], round(j["params"]["sparsity"], 3)) for j in jobs)
    assert pairs == [("sparsegpt", 0.5), ("sparsegpt", 0.7), ("wanda", 0.5), ("wanda", 0.7)]
    assert all(j["status"] == "completed" and j["score"] > 0.3 for j in jobs)
    sweep_dir = next(p.parent for p in tmp_path.rglob("summary.csv"))
    rows = (sweep_dir / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "sparsity" in rows[0]
    assert (sweep_dir / "tradeoff.png").stat().st_size > 0 and "Pareto front" in (sweep_dir / "summary.md").read_text()
