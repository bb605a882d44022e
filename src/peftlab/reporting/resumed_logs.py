"""A run resumed into its own directory keeps the curves it logged before it stopped.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts ("previous log files
in this directory will be deleted"), so a resume into the run's own directory (auto-resume, or
``ckpt_path=`` pointing there) lost the curve before the kill. :class:`ResumableCSVLogger` reads
the old rows first and logs again, through the writer's public ``log_metrics``, those up to the
checkpoint's ``global_step`` ``g`` (Lightning logs the batch that completes step ``g`` at step
``g`` and an epoch's validation at the epoch's last step minus one); rows the killed run wrote
after its checkpoint are dropped, since the resumed run logs those steps again. The header is
the union of old and new columns (Lightning rewrites it when new keys appear).

TensorBoard's logger appends a new event file to the same ``version: ""`` directory; it gets
``purge_step`` (a ``SummaryWriter`` argument), so TensorBoard hides the killed run's events after
the checkpoint's step. W&B continues the same run id (``resume: allow`` in
configs/logger/wandb.yaml); W&B keeps the history it already received, so points the killed run
logged after its checkpoint stay there (W&B's "rewind" of a run is online-only).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

METRICS_CSV = "metrics.csv"


def checkpoint_step(ckpt_path: str | None) -> int | None:
    """The ``global_step`` stored in a Lightning checkpoint (None without one or when unreadable).

    ``mmap=True``: only the small header entries are read, not the weights.
    """
    if not ckpt_path or not Path(ckpt_path).is_file():
        return None
    try:
        return int(torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # the resume itself reports an unreadable checkpoint, in one line
        return None


def earlier_rows(metrics_csv: Path, up_to_step: int) -> list[dict[str, Any]]:
    """Rows of an earlier ``metrics.csv`` with ``step <= up_to_step``, empty cells left out, numbers parsed."""
    if not metrics_csv.is_file():
        return []
    with metrics_csv.open(newline="") as fh:
        rows = [{k: _number(v) for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(fh)]
    return [row for row in rows if isinstance(row.get("step"), int) and row["step"] <= up_to_step]


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger that, resumed at a checkpoint's step, keeps the earlier run's rows up to it.

    Rows before the checkpoint's step ``g`` are logged again at once. Rows at ``g`` itself are
    held back: some series at ``g`` were logged before the checkpoint was written and never come
    again (the batch that completed step ``g``: losses, α), others come again from the resumed run
    (the learning rate logged at the start of the next batch, the pruning record the resume
    re-applies); each held row loses the series the resumed run logs at ``g`` and is written
    before the first row past ``g`` (or at the end), so each step of each series appears once.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._resume_step: int | None = None
        self._held: list[dict[str, Any]] = []

    def resume_at(self, step: int) -> int:
        """Keep the rows of an earlier run in this logger's directory up to ``step``; the number of rows kept.

        Call before anything is logged (Lightning's writer deletes the old file when it is created).
        """
        rows = earlier_rows(Path(self.log_dir) / METRICS_CSV, step)
        with warnings.catch_warnings():  # "Previous log files ... will be deleted": not so, they are kept here
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            writer = self.experiment  # Lightning's writer: the old file is gone from here on
        for row in rows:
            if row["step"] < step:
                writer.log_metrics({k: v for k, v in row.items() if k != "step"}, row["step"])
        writer.save()
        self._resume_step, self._held = step, [r for r in rows if r["step"] == step]
        return len(rows)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log a row; a resumed run's first row at the checkpoint's step replaces the held series it repeats."""
        if self._held:
            if step == self._resume_step:
                self._held = [{k: v for k, v in r.items() if k not in metrics} for r in self._held]
            elif step is None or step > self._resume_step:
                self._write_held()
        super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write any held rows, then flush."""
        self._write_held()
        super().finalize(status)

    def _write_held(self) -> None:
        held, self._held = self._held, []
        for row in held:
            values = {k: v for k, v in row.items() if k != "step"}
            if values and {k for k in values if k != "epoch"}:
                self.experiment.log_metrics(values, row["step"])


def tensorboard_resume_kwargs(save_dir: str, name: str, version: Any, step: int | None) -> dict[str, Any]:
    """``{"purge_step": step + 1}`` when resuming at ``step`` into a TensorBoard directory that already holds event files.

    Events at the checkpoint's step itself stay: most were logged before the checkpoint and do not
    come again; a series the resumed run logs again at that step (the learning rate) shows the same
    value twice there.
    """
    if step is None or version is None:  # version None: Lightning starts a new version_N directory
        return {}
    log_dir = Path(save_dir) / name / str(version)
    if not any(log_dir.glob("events.out.tfevents.*")):
        return {}
    return {"purge_step": step + 1}  # TensorBoard hides the earlier events past g (those at g: as held CSV rows)


def _number(text: str) -> Any:
    """``"3"`` → 3, ``"0.5"`` → 0.5; anything else stays text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
