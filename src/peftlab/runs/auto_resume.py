"""Auto-resume: a job started into a run directory that already holds its checkpoints continues.

Under SLURM a requeued job (preempted, or at its time limit) gets the same run directory
(``peftlab/runs/run_identity.py``); this finds ``checkpoints/last.ckpt`` there and resumes from it:
weights, optimizer, LR schedule, pruning masks and schedule, weighting state, RNG states, the
epoch and the position in it, as any ``ckpt_path=`` resume does. A job whose metrics.json says
``completed`` is not run again.

Only the same job continues: a run directory holding a run of another config (a typo in
``hydra.run.dir``, the same directory reused with ``trainer.max_epochs=2``) is refused with one
line naming the differing keys, and ``resume=false`` refuses a directory that holds a run instead
of overwriting it. Nothing an earlier run wrote is replaced. Two processes started into one run
dir at once are told apart by the run dir's lock (:mod:`peftlab.runs.run_dir_lock`), which
:class:`RunDirGuard` takes before Hydra writes anything there.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from peftlab.checkpoints.mismatch import flatten_config
from peftlab.errors import ConfigError
from peftlab.reporting import METRICS_FILE
from peftlab.runs.run_dir_lock import launching_process, lock_run_dir, release_run_dir

log = logging.getLogger(__name__)
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# keys that may differ between two starts of the same job: where it runs from and how it resumes
NOT_THE_JOB = ("ckpt_path", "resume", "paths.")


class RunDirInUse(ConfigError):
    """The run directory holds another run; nothing is written into it (not even a failure record)."""


def run_or_continue(train: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """The job of ``cfg``: its metrics if its run dir says completed, else ``train`` (resuming from the run dir's last.ckpt)."""
    run_dir = Path(cfg.paths.output_dir)
    if check_run_dir(cfg, run_dir) is None:
        return train(cfg)
    metrics_file, last = run_dir / METRICS_FILE, run_dir / LAST_CHECKPOINT
    metrics = _read_json(metrics_file)
    if metrics and metrics.get("status") == "completed":
        log.info(f"resume: {metrics_file} says completed; not running this job again")
        return metrics
    if last.is_file() and cfg.get("ckpt_path") is None:
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
        log.info(f"resume: continuing from {last}")
    return train(cfg)


def check_run_dir(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The file of an earlier run of this same job in ``run_dir`` (None: the dir holds no run).

    Raises :class:`RunDirInUse` when it holds a run of another config, or any run under ``resume=false``.
    """
    earlier = _earlier_config(run_dir / METRICS_FILE, run_dir / LAST_CHECKPOINT)
    if earlier is None:
        return None
    source, config = earlier
    if not cfg.get("resume", True):
        raise RunDirInUse("resume", f"false, but {run_dir} already holds a run ({source.name}) that starting over would overwrite; choose another hydra.run.dir, or remove that directory first")
    # a DDP process Lightning started (LOCAL_RANK > 0) re-runs the command as a single run and may
    # resolve keys of its sweep differently (logger group); rank 0 has already compared
    first_rank = int(os.environ.get("LOCAL_RANK", "0") or 0) == 0
    changes = config_changes(config, OmegaConf.to_container(cfg, resolve=True)) if first_rank else []
    if changes:
        raise RunDirInUse(
            "hydra.run.dir",
            f"{run_dir} holds a run of another config ({'; '.join(changes[:3])}); give this run its own "
            f"hydra.run.dir (to train that run further: ckpt_path={run_dir / LAST_CHECKPOINT} in a new run dir)",
        )
    return source


class RunDirGuard(Callback):
    """Hydra callback: refuse a single run whose ``hydra.run.dir`` holds another run, before Hydra writes into it.

    Hydra saves ``.hydra/*.yaml`` and opens the job's log in the run dir before the task runs, so
    :func:`run_or_continue` alone would be too late to leave an earlier run's files untouched.
    It then takes the run dir's lock for the life of the process (not for a completed run, which
    is only read; not on DDP ranks > 0); a run dir that cannot be written is one line naming the
    key that placed it there.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Resolve the run dir and the task config as Hydra's run_job will, then :func:`check_run_dir`."""
        cfg = copy.deepcopy(config)
        run_dir = Path(os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir"))))  # as Hydra's run_job does
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.output_dir} in paths.output_dir
        try:
            task = copy.deepcopy(cfg)
            with read_write(task), open_dict(task):
                del task["hydra"]
            earlier = check_run_dir(task, run_dir)
            if launching_process() and not (earlier is not None and earlier.name == METRICS_FILE):  # a completed run is only read
                _lock_or_explain(task, run_dir)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        finally:
            HydraConfig.instance().set_config(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A multirun job: hold its own directory's lock while it runs (runs/run_dir_lock.py)."""
        hc = config.get("hydra")
        if hc is not None and str(hc.mode) == "RunMode.MULTIRUN" and launching_process():
            try:
                lock_run_dir(hc.runtime.output_dir, key="hydra.sweep.dir")
            except ConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                sys.exit(2)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A multirun job ended: the next job of this process has its own directory."""
        hc = config.get("hydra")
        if hc is not None and str(hc.mode) == "RunMode.MULTIRUN":
            release_run_dir(hc.runtime.output_dir)


def _lock_or_explain(task: DictConfig, run_dir: Path) -> None:
    """Take the run dir's lock; a directory that cannot be written is one ConfigError naming the key that chose it."""
    try:
        lock_run_dir(run_dir)
    except OSError as err:
        key, where = unwritable_key(task, run_dir)
        raise ConfigError(key, f"{where} cannot be written ({err.strerror or err}: {err.filename or run_dir}); point {key} at a writable directory") from None


def unwritable_key(task: DictConfig, run_dir: Path) -> tuple[str, str]:
    """(config key, its value) that placed ``run_dir`` where it cannot be written.

    ``hydra.run.dir`` when the run dir lies outside ``paths.log_dir``; else ``PEFTLAB_ROOT`` when
    that environment variable set the log dir (the default ``${paths.root_dir}/logs``), else
    ``paths.log_dir``.
    """
    log_dir = Path(os.path.abspath(str(OmegaConf.select(task, "paths.log_dir", default="") or ".")))
    if log_dir not in (run_dir, *run_dir.parents):
        return "hydra.run.dir", str(run_dir)
    root = os.environ.get("PEFTLAB_ROOT")
    if root and Path(os.path.abspath(os.path.expanduser(root))) in (log_dir, *log_dir.parents):
        return "PEFTLAB_ROOT", root
    return "paths.log_dir", str(log_dir)


def config_changes(before: dict, now: dict) -> list[str]:
    """``key: A -> B`` for every key that differs between two resolved configs (run-location keys aside)."""
    old, new = flatten_config(before), flatten_config(now)
    keys = [k for k in dict.fromkeys([*old, *new]) if not any(k == p or k.startswith(p) for p in NOT_THE_JOB)]
    return [f"{k}: {old.get(k, '<absent>')} -> {new.get(k, '<absent>')}" for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]


def _earlier_config(metrics_file: Path, last: Path) -> tuple[Path, dict] | None:
    """(file, config) of a run already in the run dir: from metrics.json, else from last.ckpt; None when empty."""
    metrics = _read_json(metrics_file)
    if metrics is not None and isinstance(metrics.get("config"), dict) and metrics.get("status") == "completed":
        return metrics_file, metrics["config"]
    if last.is_file():
        from peftlab.checkpoints.stored_config import load_training_config  # one line for a truncated or foreign file

        try:
            return last, OmegaConf.to_container(load_training_config(str(last)))
        except ConfigError as err:
            raise RunDirInUse("hydra.run.dir", f"{last} cannot be resumed ({err}); choose another hydra.run.dir") from None
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None
