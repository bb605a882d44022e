"""A callback that writes NaN/Inf into chosen training batches (inputs or labels) before the step."""

from __future__ import annotations

import lightning as L


class PoisonBatches(L.Callback):
    """Make ``what`` non-finite in the first-epoch batches ``batches`` (on rank ``rank``, or every rank).

    ``what``: ``inputs_nan`` | ``inputs_inf`` (every input feature of the batch), ``labels_nan`` |
    ``labels_inf`` (the labels of task column ``task`` — a regression task, so its loss becomes
    non-finite while the other tasks' stay finite).
    """

    def __init__(self, what: str, batches: list[int], task: int = 1, rank: int | None = None):
        self.what, self.batches, self.task, self.rank = what, set(batches), task, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Poison this batch in place when it is one of the chosen ones."""
        if trainer.current_epoch != 0 or batch_idx not in self.batches:
            return
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        value = float("nan") if self.what.endswith("nan") else float("inf")
        if self.what.startswith("inputs"):
            batch["inputs"].fill_(value)
        else:
            batch["y"][:, self.task] = value
