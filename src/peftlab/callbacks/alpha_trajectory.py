"""Tracks each task's effective weight α over training and plots it at the end of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from peftlab.checkpoints.atomic_files import atomic_path


class AlphaTrajectory(L.Callback):
    """Records ``pl_module.weighting.alpha()`` after every optimizer step; writes ``alpha.png``.

    α is also sent to every logger at every optimizer step as ``alpha/<task>`` (directly, not
    through ``self.log``, so ``trainer.log_every_n_steps`` does not thin it out). Loggers only
    write on rank zero.
    """

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = every_n_steps
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Record α at this global step."""
        step = trainer.global_step
        if step % self.every_n_steps or (self.steps and self.steps[-1] == step):
            return
        self.steps.append(step)
        alpha = {name: float(value) for name, value in pl_module.weighting.alpha().items()}
        for name, value in alpha.items():
            self.history.setdefault(name, []).append(value)
        if trainer_is_rank_zero():
            for logger in trainer.loggers:
                logger.log_metrics({f"alpha/{name}": value for name, value in alpha.items()}, step=step)

    def run_report(self, model, run_dir: Path) -> dict[str, Any]:
        """Plot the trajectories to ``<run_dir>/alpha.png`` (nothing when no step was recorded)."""
        if not self.steps or not trainer_is_rank_zero():
            return {}
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        groups = identical_series(self.history)
        constant = all(max(v) - min(v) < 1e-12 for v in self.history.values())
        styles = ["-", "--", ":", "-."]
        for i, names in enumerate(groups):
            # tasks with the very same α share one line and one legend entry ("digit = parity"),
            # so equal weights do not hide each other
            ax.plot(self.steps, self.history[names[0]], styles[i % len(styles)], label=" = ".join(names), linewidth=1.8)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("effective task weight α")
        kind = "constant over the run" if constant else "per task"
        ax.set_title(f"α {kind} ({type(model.weighting).__name__})")
        ax.legend()
        fig.tight_layout()
        path = Path(run_dir) / "alpha.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        return {"alpha_plot": str(path)}


def identical_series(history: dict[str, list[float]]) -> list[list[str]]:
    """Task names grouped by identical α trajectories, in task order."""
    groups: list[list[str]] = []
    for name, values in history.items():
        for group in groups:
            if history[group[0]] == values:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def trainer_is_rank_zero() -> bool:
    """True on the process that writes reports."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
