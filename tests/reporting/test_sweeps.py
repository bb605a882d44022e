"""Multiruns as users start them: no extra arguments, any directory, and one failing job does not stop the rest."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import peftlab.config.resolvers as resolvers
import peftlab.runs.run_identity as run_identity
from conftest import ROOT
from peftlab.cli import CONFIG_DIR
from peftlab.reporting.sweep_report import collect_rows, write_sweep_report

ONE_BATCH = ["debug=fast_dev_run", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def compose_with_hydra(overrides=()):
    """The config as Hydra's launcher sees it, before any job has set Hydra's runtime config."""
    HydraConfig.instance().cfg = None  # as in a fresh `python train.py -m` process
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_sweep_dir_resolves_before_hydra_sets_its_runtime(monkeypatch):
    monkeypatch.delenv(resolvers.ROOT_ENV, raising=False)
    cfg = compose_with_hydra()
    sweep_dir = str(cfg.hydra.sweep.dir)  # failed with "HydraConfig was not set" when root_dir used hydra:runtime.cwd
    assert sweep_dir.startswith(str(ROOT / "logs" / "train" / "multiruns") + "/")
    assert str(cfg.hydra.run.dir).startswith(str(ROOT / "logs" / "train" / "runs") + "/")


def test_project_root_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(resolvers.ROOT_ENV, str(tmp_path))
    assert resolvers.project_root() == str(tmp_path.resolve())
    monkeypatch.delenv(resolvers.ROOT_ENV)
    monkeypatch.chdir(tmp_path)  # not where the command starts: the repository
    assert resolvers.project_root() == str(ROOT)


def test_every_job_gets_the_launchers_sweep_dir(monkeypatch):
    """SLURM jobs are other processes: the sweep dir travels as the launcher's resolver cache."""
    launcher_cfg = compose_with_hydra()
    sweep_dir = str(launcher_cfg.hydra.sweep.dir)
    shipped = pickle.loads(pickle.dumps(launcher_cfg))  # what submitit sends to a node
    monkeypatch.setattr(run_identity, "_LAUNCH_UID", "otherprocess")  # the job runs in another process
    job_cfg = compose_with_hydra()
    assert str(job_cfg.hydra.sweep.dir) != sweep_dir  # without the cache it would differ...
    job_cfg = compose_with_hydra()
    OmegaConf.copy_cache(from_config=shipped, to_config=job_cfg)  # ...Hydra's load_sweep_config does this
    assert str(job_cfg.hydra.sweep.dir) == sweep_dir


def run_multirun(*overrides: str, cwd, root) -> subprocess.CompletedProcess:
    """``python <repo>/train.py -m <overrides>`` started in ``cwd``; PEFTLAB_ROOT=root (no paths.* overrides)."""
    env = {**os.environ, "PEFTLAB_ROOT": str(root), "WANDB_MODE": "offline"}
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, *ONE_BATCH]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_multirun_from_another_directory_writes_its_report(tmp_path):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "project"
    elsewhere.mkdir()
    result = run_multirun("strategy.weighting.alpha=[1,1,1],[0.6,0.3,0.1]", cwd=elsewhere, root=root)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (root / "logs" / "debug" / "multiruns").iterdir()
    rows = collect_rows(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    assert [r["overrides"] for r in rows] == ["strategy.weighting.alpha=[1,1,1]", "strategy.weighting.alpha=[0.6,0.3,0.1]"]
    assert all((sweep / f"summary.{ext}").stat().st_size > 0 for ext in ("csv", "md", "png"))
    assert list(elsewhere.iterdir()) == []  # nothing written where the command started


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_the_rest_run(tmp_path):
    result = run_multirun("strategy.weighting.alpha=[1,2],[1,1,1],[1,2,3,4]", cwd=tmp_path, root=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors[0].startswith("error: job 0: strategy.weighting.alpha: got 2 value(s)")
    assert errors[1].startswith("error: job 2: strategy.weighting.alpha: got 4 value(s)")
    assert errors[-1].startswith("error: 2 of 3 jobs failed (jobs 0, 2)")
    assert "Traceback" not in result.stderr
    (sweep,) = (tmp_path / "logs" / "debug" / "multiruns").iterdir()
    statuses = {d.name: json.loads((d / "metrics.json").read_text()) for d in sweep.glob("[0-9]")}
    assert statuses["0"]["status"] == statuses["2"]["status"] == "failed"
    assert statuses["0"]["error"].startswith("strategy.weighting.alpha: got 2 value(s)")
    assert statuses["1"]["status"] == "completed"
    summary = (sweep / "summary.md").read_text()
    assert "2 of 3 jobs failed: 0, 2." in summary and "got 4 value(s)" in summary


def test_report_lists_jobs_that_left_no_metrics(tmp_path):
    for job, metrics in (("0", {"status": "failed", "error": "boom"}), ("1", None)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        if metrics:
            (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
    paths = write_sweep_report(tmp_path)
    rows = collect_rows(tmp_path)
    assert [(r["status"], r["error"]) for r in rows] == [("failed", "boom"), ("missing", "no metrics.json: the job did not finish")]
    assert "2 of 2 jobs failed: 0, 1." in paths["md"].read_text()


@pytest.mark.slow
def test_sweep_report_script_help_and_bad_dir(tmp_path):
    script = str(ROOT / "scripts" / "sweep_report.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=600)
    assert helped.returncode == 0 and "sweep_dir" in helped.stdout and not (ROOT / "--help").exists()
    bad = subprocess.run([sys.executable, script, str(tmp_path / "nope")], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: sweep_dir: ")
