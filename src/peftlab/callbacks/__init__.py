"""Every Lightning callback peftlab adds: checkpoints at step boundaries, RNG and config in checkpoints,
the LR budget, step timing, SLURM requeue, the α trajectory and pruning's schedule."""
