"""The commands users type: bad input, multirun, DDP on 2 CPU processes, W&B offline, run dirs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, metrics_files, read_json, run_cli

QUICK = ["debug=limit_batches", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One completed run whose directory must never be touched by later bad commands."""
    log_dir = tmp_path_factory.mktemp("logs")
    result = run_cli("train.py", *QUICK, log_dir=log_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    (metrics,) = metrics_files(log_dir)
    snapshot = {p: p.read_bytes() for p in metrics.parent.rglob("*") if p.is_file()}
    return log_dir, metrics, snapshot


@pytest.mark.parametrize(
    "override, key",
    [
        ("strategy=nope", "strategy: unknown option 'nope'; allowed: "),
        ("strategy/weighting=nope", "strategy/weighting: unknown option 'nope'"),
        ("strategy.weighting.alpha=[0.5,0.5]", "strategy.weighting.alpha: got 2 value(s)"),
        ("strategy.weighting.alpha=[0.5,-1,1]", "strategy.weighting.alpha: got [0.5, -1, 1]; weights must be finite and >= 0"),
        ("strategy.weighting.alpha=[a,b,c]", "strategy.weighting.alpha: got non-numeric"),
        ("strategy.weighting.alpha={digit: 1, colour: 2}", "strategy.weighting.alpha: unknown task name(s) ['colour']; allowed: digit, parity, high"),
        ("data.tasks.1.label=colour", "data.tasks[1].label: unknown label 'colour' in data.source; allowed: digit, parity, high"),
        ("data.batch_size=0", "data.batch_size: must be a positive integer"),
        ("data.val_fraction=1.2", "data.val_fraction: must be a number in (0, 1)"),
        ("data.test_fraction=0", "data.test_fraction: must be a number in (0, 1)"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_naming_the_key(finished_run, override, key):
    log_dir, metrics, snapshot = finished_run
    result = run_cli("train.py", *QUICK, override, log_dir=log_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and key in lines[-1], result.stderr[-1500:]
    assert sum(line.startswith("error:") for line in lines) == 1
    # the earlier run is untouched
    assert {p: p.read_bytes() for p in metrics.parent.rglob("*") if p.is_file()} == snapshot
    # a failed run records its failure, without checkpoints
    failed = [m for m in metrics_files(log_dir) if read_json(m)["status"] == "failed"]
    if not override.startswith("strategy=") and "/" not in override.split("=")[0]:
        assert key.split(":")[0] in read_json(failed[-1])["error"]


@pytest.mark.slow
def test_eval_with_a_missing_checkpoint_fails_cleanly(tmp_path):
    result = run_cli("eval.py", "ckpt_path=/nonexistent/best.ckpt", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ckpt_path: /nonexistent/best.ckpt: no such file")


@pytest.mark.slow
def test_eval_cli_reproduces_test_metrics(finished_run, tmp_path):
    _, metrics, _ = finished_run
    trained = read_json(metrics)
    result = run_cli("eval.py", f"ckpt_path={trained['ckpt_path']}", "trainer.enable_progress_bar=false", log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (evaluated,) = metrics_files(tmp_path)
    assert read_json(evaluated)["tasks"] == trained["tasks"]


@pytest.mark.slow
def test_two_job_multirun_over_alpha(tmp_path):
    result = run_cli("train.py", "-m", "strategy.weighting.alpha=[1,1,1],[0.6,0.3,0.1]", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = [read_json(m) for m in metrics_files(tmp_path)]
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    assert sorted(tuple(r["alpha"].values()) for r in runs) == [(0.6, 0.3, 0.1), (1.0, 1.0, 1.0)]
    assert len({r["run_dir"] for r in runs}) == 2
    sweep_dir = metrics_files(tmp_path)[0].parent.parent
    lines = (sweep_dir / "summary.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("job,overrides,status,score")
    assert "strategy.weighting.alpha=[0.6,0.3,0.1]" in (sweep_dir / "summary.md").read_text()
    assert "debug=limit_batches" not in (sweep_dir / "summary.md").read_text()  # only swept keys are shown
    assert (sweep_dir / "summary.png").stat().st_size > 1000


@pytest.mark.slow
def test_ddp_sim_trains_on_two_cpu_processes(tmp_path):
    result = run_cli("train.py", "trainer=ddp_sim", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = metrics_files(tmp_path)
    data = read_json(metrics)
    assert data["status"] == "completed"
    assert data["config"]["trainer"]["devices"] == 2
    assert "GLOBAL_RANK: 1" in result.stdout + result.stderr or "Rank 1" in result.stdout + result.stderr


@pytest.mark.slow
def test_wandb_logs_offline_without_an_api_key(tmp_path):
    result = run_cli("train.py", "logger=wandb", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (metrics,) = metrics_files(tmp_path)
    runs = list(metrics.parent.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


@pytest.mark.slow
def test_run_dirs_are_unique_per_process():
    code = "from peftlab.runs.run_identity import run_id; print(run_id({}))"  # clusters: run dir name outside SLURM
    uids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout for _ in range(3)}
    assert len(uids) == 3
