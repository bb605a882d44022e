"""Under SLURM, SIGTERM ends the process at once, recording nothing.

SLURM sends SIGTERM to every process of a job it requeues (our requeue on SIGUSR1,
preemption), cancels or times out, and the job's other processes (e.g. W&B's service) die with
it. Lightning only sets a flag and stops at the next step, so in between an unrelated error
(W&B's "Connection lost") would be recorded as a failed run: a failed metrics.json and, under
submitit, a failed result that ends the sweep although the job is about to rerun. Exiting with
SystemExit leaves no record; the requeued job resumes from its checkpoint.
"""

from __future__ import annotations

import os
import signal


def exit_on_sigterm_under_slurm() -> None:
    """Under SLURM (``SLURM_JOB_ID`` set), make SIGTERM raise ``SystemExit(143)``; elsewhere do nothing."""
    if not os.environ.get("SLURM_JOB_ID"):
        return

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)  # Lightning keeps it: it calls existing handlers after its own
