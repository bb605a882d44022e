"""A job's lifecycle: its identity (dir, logger id), auto-resume and the run-dir guard, SLURM signals,
DDP children of a multirun job, library warnings silenced."""
