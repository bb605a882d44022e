"""SLURM on a real one-node cluster started on this machine (scripts/slurm_cluster.sh).

Only when asked: with PEFTLAB_SLURM_TESTS=1 (`make test-all` and .ci/run set it) the module fixture
installs Debian's Slurm packages when missing, starts munge, MariaDB, slurmdbd, slurmctld and slurmd,
and stops them all at the end. Without it these tests are skipped, so a plain `make test` or
`pytest` never installs packages or starts daemons. They also skip where a cluster cannot work
(not root, or neither Slurm nor apt-get is there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, read_json

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CLUSTER = ROOT / "scripts" / "slurm_cluster.sh"
ASK = "PEFTLAB_SLURM_TESTS"  # set to 1 to let these tests install and start a local Slurm cluster
QUICK = ["debug=limit_batches", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _skip_reason() -> str | None:
    if os.environ.get(ASK) != "1":
        return f"real Slurm tests start a local cluster (apt-installs Slurm and MariaDB, starts daemons) only when asked: {ASK}=1 pytest -m slurm, or `make test-all`"
    if sys.platform != "linux" or os.geteuid() != 0:
        return "a local Slurm cluster needs root on Linux (scripts/slurm_cluster.sh start)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get is not available to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node Slurm cluster (partition `debug`) for this module; stopped afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True, timeout=300)


def _env() -> dict[str, str]:
    """This test process's environment (PYTHONPATH, venv) for the jobs; W&B off, one thread per process."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("WANDB_API_KEY", None)
    return env


def _train(*args: str, log_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", *args, f"paths.log_dir={log_dir}"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _sweep_dirs(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("*/multiruns/*") if p.is_dir())


def test_two_job_sweep_through_the_launcher(slurm_cluster, tmp_path):
    result = _train("-m", "hydra/launcher=slurm_local", *QUICK, "seed=1,2", log_dir=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep,) = _sweep_dirs(tmp_path)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    seeds = []
    for job in jobs:
        metrics = read_json(sweep / job / "metrics.json")
        assert metrics["status"] == "completed" and 0 < metrics["score"] <= 1
        assert metrics["run_dir"] == str(sweep / job)
        seeds.append(metrics["config"]["seed"])
    assert seeds == [1, 2]
    # each job really ran as a SLURM array task, with the array's submission script
    logs = list((sweep / ".submitit").glob("*_*/*_0_log.out"))
    assert len(logs) == 2
    (script,) = [p.read_text() for p in (sweep / ".submitit").glob("*/*_submission.sh")]  # one array job
    assert "#SBATCH --signal=USR1@90" in script and "#SBATCH --requeue" in script and "--partition=debug" in script
    summary = (sweep / "summary.md").read_text()
    assert "seed=1" in summary and "seed=2" in summary and summary.count("| completed |") == 2
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.png").is_file()


def test_two_task_ddp_job_writes_one_run_directory(slurm_cluster, tmp_path):
    result = _train("-m", "hydra/launcher=slurm_local", "trainer=ddp_sim", *QUICK, log_dir=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep,) = _sweep_dirs(tmp_path)
    (script,) = [p.read_text() for p in (sweep / ".submitit").glob("*/*_submission.sh")]
    assert "#SBATCH --ntasks-per-node=2" in script  # tasks_per_node = trainer.devices
    run_dirs = {p.parent for p in tmp_path.rglob("metrics.json")}
    assert run_dirs == {sweep / "0"}
    assert not list(tmp_path.glob("*/runs/*"))  # no rank made a directory of its own
    log = (sweep / "0" / "debug.log").read_text()
    # both processes came from srun (GLOBAL_RANK 0 and 1 of 2), none was spawned by Lightning
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    task_logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert [p.name.rsplit("_", 2)[-2] for p in task_logs] == ["0", "1"]  # srun tasks 0 and 1
    metrics = read_json(sweep / "0" / "metrics.json")
    assert metrics["status"] == "completed" and metrics["config"]["trainer"]["devices"] == 2


# ---- preemption: signal, checkpoint, requeue, resume --------------------------------------------

# ~90 optimizer steps per epoch, pruning between steps 50 and 300: long enough to signal mid-run.
REQUEUE_RUN = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "strategy=prune_share",
    "data.batch_size=16",
    "trainer.max_epochs=5",
    "strategy.pruning.start_step=50",
    "strategy.pruning.end_step=300",
    "strategy.pruning.every_n_steps=25",
]


def _sbatch(log_dir: Path, *overrides: str) -> str:
    log_dir.mkdir(parents=True, exist_ok=True)  # sbatch --output needs an existing folder
    cmd = ["sbatch", "--parsable", "--cpus-per-task=1", f"--output={log_dir}/slurm-%j.out", "scripts/slurm/train.sbatch", *overrides, f"paths.log_dir={log_dir}"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().split(";")[0]


def _squeue(job: str) -> tuple[str, str] | None:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T|%r"], capture_output=True, text=True).stdout.strip()
    return tuple(out.split("|")) if out else None  # type: ignore[return-value]


def _wait(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_signalled_job_checkpoints_requeues_and_finishes_like_an_uninterrupted_run(slurm_cluster, tmp_path):
    reference = _sbatch(tmp_path / "ref", *REQUEUE_RUN)
    job = _sbatch(tmp_path / "pre", *REQUEUE_RUN)
    run_dir = tmp_path / "pre" / "train" / "runs" / f"slurm-{job}"
    out = tmp_path / "pre" / f"slurm-{job}.out"
    # once the first epoch's last.ckpt exists (and training goes on), send what SLURM sends before the time limit
    _wait(lambda: (run_dir / "checkpoints" / "last.ckpt").exists() or _squeue(job) is None, 300, "the first last.ckpt", out)
    assert _squeue(job) is not None, "the job ended before it could be signalled:\n" + out.read_text()[-3000:]
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be signalled"
    subprocess.run(["scancel", "--signal=USR1", job], check=True)
    # the job writes last.ckpt at the next step boundary and requeues; a requeued job waits ~2 min unless kicked
    _wait(lambda: (_squeue(job) or ("",))[0] == "PENDING", 120, "the job to be requeued", out)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    _wait(lambda: _squeue(job) is None and _squeue(reference) is None, 420, "both jobs to end", out)

    log = out.read_text()
    assert f"job {job} restart 0" in log and f"job {job} restart 1" in log, log[-3000:]
    assert "SLURM's USR1: wrote" in log and f"requeueing job {job}" in log, log[-3000:]
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))  # Lightning's in-handler save is off
    resumed = read_json(run_dir / "metrics.json")
    full = read_json(tmp_path / "ref" / "train" / "runs" / f"slurm-{reference}" / "metrics.json")
    assert resumed["status"] == full["status"] == "completed"
    assert resumed["config"]["ckpt_path"] == str(run_dir / "checkpoints" / "last.ckpt")  # auto-resumed
    assert full["config"]["ckpt_path"] is None
    # the same result as the uninterrupted run: weights, masks, α, test metrics, sparsity
    a, b = _weights(run_dir), _weights(Path(full["run_dir"]))
    assert a.keys() == b.keys() and any(k.endswith("_mask") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["tasks"] == full["tasks"] and resumed["alpha"] == full["alpha"]
    assert resumed["params"]["sparsity"] == full["params"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert resumed["pruning"]["history"] == full["pruning"]["history"]


def _array_tasks() -> dict[str, tuple[str, str]]:
    """``{"<array id>_<task>": (state, reason)}`` of every queued array task."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True).stdout
    return {i: (s, r) for i, s, r in (line.split("|") for line in out.splitlines() if "_" in line)}


def test_launcher_job_requeued_on_signal_resumes_in_its_job_dir_with_the_same_wandb_run(slurm_cluster, tmp_path):
    # two identical jobs (seed=42,42): job 0 is signalled and requeued, job 1 runs through
    env = {**_env(), "WANDB_MODE": "offline"}
    cmd = [sys.executable, "train.py", "-m", "hydra/launcher=slurm_local", "logger=wandb", *REQUEUE_RUN, "seed=42,42", f"paths.log_dir={tmp_path}"]
    sweep_proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        last = lambda: next(iter(tmp_path.glob("train/multiruns/*/0/checkpoints/last.ckpt")), None)  # noqa: E731
        _wait(lambda: last() or sweep_proc.poll() is not None, 300, "job 0's first last.ckpt")
        assert last() and sweep_proc.poll() is None, "the sweep ended before job 0 could be signalled"
        job_dir = last().parent.parent
        (task,) = [i for i in _array_tasks() if i.endswith("_0")]
        assert not (job_dir / "metrics.json").exists()
        subprocess.run(["scancel", "--signal=USR1", task], check=True)
        _wait(lambda: _array_tasks().get(task, ("",))[0] == "PENDING", 120, f"{task} to be requeued")
        subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], check=True)
        out, _ = sweep_proc.communicate(timeout=420)
    finally:
        if sweep_proc.poll() is None:
            sweep_proc.kill()
    assert sweep_proc.returncode == 0, out[-3000:]
    sweep = job_dir.parent
    resumed, full = read_json(sweep / "0" / "metrics.json"), read_json(sweep / "1" / "metrics.json")
    assert resumed["config"]["ckpt_path"] == str(job_dir / "checkpoints" / "last.ckpt")
    assert not list(job_dir.glob("hpc_ckpt_*.ckpt"))  # written by our step-boundary handler, not Lightning's
    a, b = _weights(sweep / "0"), _weights(sweep / "1")
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed["tasks"] == full["tasks"]
    # both attempts of job 0 logged to one W&B run id; job 1 has its own
    ids0 = {p.name.split("-", 3)[-1] for p in (sweep / "0" / "wandb").glob("offline-run-*")}
    assert len(list((sweep / "0" / "wandb").glob("offline-run-*"))) == 2 and len(ids0) == 1
    ids1 = {p.name.split("-", 3)[-1] for p in (sweep / "1" / "wandb").glob("offline-run-*")}
    assert len(ids1) == 1 and ids0 != ids1
    assert (sweep / "summary.md").read_text().count("| completed |") == 2
