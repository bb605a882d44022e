"""Checkpoint files: atomic writes, safe loading, mismatch reports, trainable-only state, the stored config."""
