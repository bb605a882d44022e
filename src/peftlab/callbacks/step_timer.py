"""A callback that times every training step (forward, backward, clipping, optimizer step)."""

from __future__ import annotations

import statistics
import time

import lightning as L

from peftlab.batch import inputs_size


class StepTimer(L.Callback):
    """Records the wall time of each training batch and the samples it held."""

    def __init__(self):
        self.step_ms: list[float] = []
        self.samples = 0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Stop the clock and count samples (across all ranks)."""
        self.step_ms.append((time.perf_counter() - self._start) * 1000.0)
        self.samples += inputs_size(batch["inputs"]) * trainer.world_size

    def summary(self, fit_s: float) -> dict[str, float]:
        """``{fit_s, train_step_ms_median, samples_per_s}``; throughput counts training steps only."""
        total_s = sum(self.step_ms) / 1000.0
        return {
            "fit_s": round(fit_s, 3),
            "train_step_ms_median": round(statistics.median(self.step_ms), 4) if self.step_ms else 0.0,
            "samples_per_s": round(self.samples / total_s, 1) if total_s else 0.0,
        }
