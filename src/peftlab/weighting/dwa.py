"""Dynamic Weight Average (Liu, Johns & Davison 2019)."""

from __future__ import annotations

from typing import Sequence

import torch

from peftlab.distributed import all_reduce_sum, rank
from peftlab.validators import check_int, check_positive
from peftlab.weighting.base import Weighting


class DWAWeighting(Weighting):
    """α = T·softmax(r / temperature), r_i = L̄_i(e−1) / L̄_i(e−2) from epoch-mean losses.

    The first ``warmup_epochs`` epochs use α = 1. Epoch means are summed locally and reduced
    once per epoch across DDP ranks (one small collective), so every rank holds the same history.

    Args:
        temperature: softmax temperature T > 0 (larger → closer to uniform).
        warmup_epochs: epochs with uniform weights before the ratio is defined (≥ 2).
    """

    def __init__(self, temperature: float = 2.0, warmup_epochs: int = 2):
        super().__init__()
        self.temperature = check_positive("strategy.weighting.temperature", temperature)
        # >= 2: the ratio of epoch means needs two past epochs
        self.warmup_epochs = check_int("strategy.weighting.warmup_epochs", warmup_epochs, minimum=2)
        for name in ("weights", "history"):
            self.register_buffer(name, torch.empty(0, dtype=torch.float64))
        # this rank's running sums are plain tensors, not buffers: DDP broadcasts buffers from
        # rank 0 at every forward, which would overwrite them before they are reduced
        self.sums = self.counts = torch.empty(0, dtype=torch.float64)
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str]) -> None:
        """Uniform weights, empty history."""
        super().setup(task_names)
        t = len(self.task_names)
        self.weights = torch.ones(t, dtype=torch.float64)
        self.history = torch.full((2, t), float("nan"), dtype=torch.float64)  # rows: epoch e-2, e-1
        self.sums = torch.zeros(t, dtype=torch.float64)
        self.counts = torch.zeros(t, dtype=torch.float64)
        self._index = {n: i for i, n in enumerate(self.task_names)}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ α_i L_i with this epoch's α; adds the losses to the epoch sums."""
        values, present = self._loss_vector(losses)
        if bool(torch.isfinite(values).all()):
            self.sums = self.sums.to(values.device) + values
            self.counts = self.counts.to(values.device) + present.double()
        w = self.weights.float()
        idx = [self._index[n] for n in losses]
        return (w[idx].to(next(iter(losses.values())).device) * torch.stack(list(losses.values()))).sum()

    def on_epoch_end(self) -> None:
        """Push the epoch means into the history and recompute α for the next epoch."""
        totals = all_reduce_sum(torch.cat([self.sums, self.counts]).to(self.history.device))
        t = len(self.task_names)
        sums, counts = totals[:t], totals[t:]
        mean = torch.where(counts > 0, sums / counts.clamp(min=1), self.history[1])
        self.history = torch.stack([self.history[1], mean])
        self.epochs += 1
        self.sums, self.counts = torch.zeros_like(self.sums), torch.zeros_like(self.counts)
        if int(self.epochs) >= self.warmup_epochs:
            ratio = self.history[1] / self.history[0]
            ratio = torch.where(torch.isfinite(ratio), ratio, torch.ones_like(ratio))
            self.weights = t * torch.softmax(ratio / self.temperature, dim=0)

    def sync_partial_state(self) -> None:
        """Before a checkpoint (every rank): gather the epoch's partial sums on rank 0, zeros elsewhere.

        The sums are per-rank (see ``__init__``) but a checkpoint holds rank 0's module state only;
        after this, rank 0's sums are the whole epoch-so-far and the epoch-end reduction still
        gives the same total, whether or not the run was resumed in between.
        """
        totals = all_reduce_sum(torch.cat([self.sums, self.counts]).to(self.history.device))
        t = len(self.task_names)
        keep = rank() == 0
        self.sums = totals[:t] if keep else torch.zeros_like(totals[:t])
        self.counts = totals[t:] if keep else torch.zeros_like(totals[t:])

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        """This epoch's partial loss sums and counts, so a mid-epoch resume gets the same epoch means."""
        return {"sums": self.sums.detach().cpu().clone(), "counts": self.counts.detach().cpu().clone()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the partial sums on rank 0 (the other ranks start from zero, see :meth:`sync_partial_state`)."""
        keep = rank() == 0
        self.sums = state["sums"].double() if keep else torch.zeros_like(state["sums"]).double()
        self.counts = state["counts"].double() if keep else torch.zeros_like(state["counts"]).double()

    def alpha(self) -> dict[str, float]:
        """This epoch's α."""
        return {n: float(w) for n, w in zip(self.task_names, self.weights)}
