"""DDP inside a multirun: `python train.py -m trainer=ddp_sim seed=1,2` on 2 CPU processes per job.

Lightning starts rank 1 by re-running the command line; under `-m` that would re-run the whole
sweep. Each job's second process must run only that job, in that job's directory.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import read_json, run_cli

pytestmark = pytest.mark.slow

QUICK = ["debug=limit_batches", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def test_two_job_multirun_with_two_ddp_processes_per_job(tmp_path):
    result = run_cli("train.py", "-m", "trainer=ddp_sim", *QUICK, "seed=1,2", log_dir=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    # one sweep, two jobs; no process started a sweep or a run of its own
    assert [p.name for p in (tmp_path / "debug").iterdir()] == ["multiruns"]
    (sweep,) = (tmp_path / "debug" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert len(list(tmp_path.rglob("metrics.json"))) == 2
    for job, seed in (("0", 1), ("1", 2)):
        job_dir = sweep / job
        metrics = read_json(job_dir / "metrics.json")
        assert metrics["status"] == "completed" and metrics["config"]["seed"] == seed
        assert metrics["config"]["trainer"]["devices"] == 2
        # rank 1 ran this job's overrides, in this job's directory, as member 2 of 2
        rank1 = (job_dir / "debug_rank1.log").read_text()
        assert f"[rank: 1] Seed set to {seed}" in rank1 and "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1
        assert f"seed={seed}" in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    report = (sweep / "summary.md").read_text()
    assert report.count("| completed |") == 2  # rank 0 of each job wrote metrics.json; the report joined them
