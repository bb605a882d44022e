"""One run per directory, also under races: an OS lock on ``<run dir>/.peftlab.lock`` for the run's life.

Two processes started at once into one run directory both pass the config check of
:mod:`peftlab.runs.auto_resume` (neither sees the other's files yet). The launching process
therefore takes ``fcntl.flock`` on a lock file in the run dir before anything else is written
there, and holds it until it exits; a second start finds it held and stops with one line naming
the holder's pid. The kernel releases a flock when its holder dies, SIGKILL included, so a
killed run never leaves a stale lock behind (no pid files to clean up, no guessing whether a pid
is still alive). DDP ranks > 0 of the same run (Lightning's children, ``srun`` tasks) share the
directory with rank 0 and take no lock.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO, Mapping

from peftlab.errors import ConfigError

LOCK_FILE = ".peftlab.lock"
# environment variables that mark a process as a rank > 0 of a run another process launched
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")

_held: dict[str, IO[str]] = {}  # run dir -> open lock file (the lock lives as long as the file is open)


class RunDirLocked(ConfigError):
    """Another live process holds the run directory's lock."""


# errno values of a filesystem that does not support flock at all (not "held by another process")
NO_LOCKING = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
log = logging.getLogger(__name__)


def launching_process(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is rank 0 of its run (or not distributed): the one that takes the lock."""
    env = os.environ if env is None else env
    return all(str(env.get(name, "0") or "0") in ("0", "") for name in RANK_VARIABLES)


def lock_run_dir(run_dir: str | os.PathLike, key: str = "hydra.run.dir") -> Path:
    """Create ``run_dir`` and hold its lock until :func:`release_run_dir` or the process ends.

    Raises :class:`RunDirLocked` (naming ``key`` and the holder's pid) when another process
    holds it. Taking it again in the process that holds it is a no-op.
    """
    run_dir = Path(run_dir).resolve()
    if str(run_dir) in _held:
        return run_dir / LOCK_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    handle = path.open("a+")  # never truncates: the holder's pid stays readable
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder_pid(handle)
        handle.close()
        raise RunDirLocked(key, f"{run_dir} is in use by another run (pid {holder}); wait for it to end, or give this run its own {key}") from None
    except OSError as err:
        handle.close()
        if err.errno not in NO_LOCKING:
            raise
        # a filesystem without flock (Lustre mounted noflock, NFS without lockd): run unlocked, say so
        log.warning("%s: %s cannot be locked on this filesystem (%s); two runs started into it at once would not be stopped", key, run_dir, err.strerror)
        return path
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[str(run_dir)] = handle
    return path


def _holder_pid(handle: IO[str], wait_s: float = 2.0) -> str:
    """The pid the holder writes right after taking the lock: a start racing ours may hold the
    lock and not have written it yet, so wait briefly for it ("unknown" if it never comes)."""
    deadline = time.monotonic() + wait_s
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "unknown"
        time.sleep(0.02)


def release_run_dir(run_dir: str | os.PathLike) -> None:
    """Release the lock this process holds on ``run_dir`` (no-op when it holds none)."""
    handle = _held.pop(str(Path(run_dir).resolve()), None)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
