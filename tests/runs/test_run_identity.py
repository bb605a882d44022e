"""Run identity: the scheduler's job id under SLURM, unique per launch elsewhere."""

from pathlib import Path

from peftlab.runs.run_identity import logger_run_id, run_id, slurm_job_key


def test_slurm_job_key_from_the_scheduler_environment():
    assert slurm_job_key({}) is None
    assert slurm_job_key({"SLURM_JOB_ID": "17"}) == "17"
    assert slurm_job_key({"SLURM_JOB_ID": "17", "SLURM_STEP_ID": "0"}) == "17"
    assert slurm_job_key({"SLURM_JOB_ID": "17", "SLURM_STEP_ID": "2"}) == "17.2"  # a later srun of the same job
    # an array task: the array's id + task id (SLURM_JOB_ID differs per task and is not what users see)
    assert slurm_job_key({"SLURM_JOB_ID": "21", "SLURM_ARRAY_JOB_ID": "20", "SLURM_ARRAY_TASK_ID": "1"}) == "20_1"
    assert run_id({"SLURM_JOB_ID": "17"}) == "slurm-17"


def test_local_run_id_is_unique_per_launch_and_stable_within_it():
    assert run_id({}) == run_id({}) and "slurm" not in run_id({})


def test_logger_run_id_follows_the_run_directory(tmp_path):
    a, b = tmp_path / "multiruns" / "2026-01-01_00-00-00_abc" / "0", tmp_path / "multiruns" / "2026-01-01_00-00-00_abc" / "1"
    assert logger_run_id(a) == logger_run_id(Path(str(a))) != logger_run_id(b)
    assert logger_run_id(a).startswith("2026-01-01-00-00-00-abc-0-")
    assert all(c.isalnum() or c == "-" for c in logger_run_id(a)) and len(logger_run_id(a)) <= 64
