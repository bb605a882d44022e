"""Batches that carry their task ids, and the samplers that draw them.

Why samplers of our own: every sampler here yields whole batches of indices and already knows
the process's rank, so (a) one tensor gather replaces per-sample collation, (b) mixed-task
batches stay single-task on every rank, with all ranks on the same task at the same step, and
(c) evaluation shards are unpadded, so no sample is counted twice under DDP (torch's
``DistributedSampler`` pads with duplicates). The trainer runs with
``use_distributed_sampler=False`` so Lightning leaves them alone.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler, SequentialSampler

from peftlab.data.inputs import batch_inputs

# Length bucketing sorts windows of this many global batches by length.
BUCKET_WINDOW = 50


class MultiTaskTensors(Dataset):
    """Inputs with one target column and one "is labelled" flag per task.

    ``dataset[indices]`` returns a whole batch: ``{"inputs", "y": [B, T] float, "task_mask":
    [B, T] bool}``; ``task_mask[b, t]`` says whether sample ``b`` carries a label for task
    ``t``. ``inputs`` is ``x[indices]`` for a feature tensor, or for token ids
    (:class:`~peftlab.data.text_inputs.TokenizedTexts`) a dict ``input_ids``, ``attention_mask``
    (``token_type_ids``) padded to the longest row of the batch; prompt + response rows (causal-LM
    tasks) add ``lm_labels`` ``[B, L]`` (see :class:`~peftlab.data.text_inputs.TokenizedTexts`).
    """

    def __init__(self, x, y: torch.Tensor, task_mask: torch.Tensor):
        self.x, self.y, self.task_mask = x, y, task_mask

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        inputs = batch_inputs(self.x, idx)
        batch = {"inputs": inputs, "y": self.y[idx], "task_mask": self.task_mask[idx]}
        if isinstance(inputs, dict) and "lm_labels" in inputs:  # token-level labels travel beside y, not into the body
            batch["lm_labels"] = inputs.pop("lm_labels")
        return batch


def bucket_by_length(order: torch.Tensor, lengths: torch.Tensor, step: int, gen: torch.Generator) -> torch.Tensor:
    """``order`` rearranged so that each run of ``step`` indices holds rows of similar length.

    Windows of ``BUCKET_WINDOW * step`` consecutive indices are sorted by length and cut into
    runs of ``step``; the full runs are then shuffled (so batch lengths still vary from step to
    step) and the leftovers go last. Less padding means less compute for texts of mixed lengths.
    """
    window = BUCKET_WINDOW * step
    runs, leftovers = [], []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        for run in torch.split(chunk, step):
            (runs if len(run) == step else leftovers).append(run)
    perm = torch.randperm(len(runs), generator=gen).tolist()
    pieces = [runs[i] for i in perm] + leftovers
    return torch.cat(pieces) if pieces else order


def _rank_slice(global_batch: torch.Tensor, rank: int, world_size: int) -> list[int]:
    return global_batch[rank::world_size].tolist()


class _EpochSampler(Sampler):
    """Shared epoch bookkeeping: Lightning calls ``set_epoch`` before each training epoch.

    Resuming mid-epoch: :meth:`resume_at` makes the next pass over ``epoch`` skip the batches
    already trained on (they are still drawn, so the seeded streams advance exactly as in an
    uninterrupted run). :class:`~peftlab.data.resumable_loader.ResumableLoader` carries the
    position in and out of checkpoints.
    """

    def __init__(self, seed: int):
        self.seed, self.epoch = seed, 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) for the next pass
        self.started_epoch, self.started_skip = 0, 0  # what the current pass began with

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for ``epoch`` (same on every rank)."""
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Continue ``epoch`` after its first ``batches_done`` batches (the next pass only)."""
        if batches_done >= len(self):  # the epoch was complete: start the next one from its beginning
            epoch, batches_done = epoch + 1, 0
        self.epoch, self._resume = epoch, (epoch, batches_done)

    def __iter__(self) -> Iterator[list[int]]:
        skip = self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0
        self._resume = None
        self.started_epoch, self.started_skip = self.epoch, skip
        for i, batch in enumerate(self._batches()):
            if i >= skip:
                yield batch

    def _batches(self) -> Iterator[list[int]]:
        raise NotImplementedError

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)


class ShuffledBatches(_EpochSampler):
    """Joint data: a seeded permutation cut into global batches of ``batch_size * world_size``.

    Rank ``r`` takes every ``world_size``-th index of each global batch, so W processes with
    batch B see exactly the samples one process with batch ``W * B`` sees. The permutation is
    padded (by wrapping) to a multiple of ``world_size`` so that all ranks run the same number
    of steps.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, lengths: torch.Tensor | None = None):
        super().__init__(seed)
        self.n, self.batch_size, self.rank, self.world_size = num_samples, batch_size, rank, world_size
        self.lengths = lengths  # row lengths for length-bucketed batches (None: plain shuffle)

    def __len__(self) -> int:
        padded = math.ceil(self.n / self.world_size) * self.world_size
        return math.ceil(padded / (self.batch_size * self.world_size))

    def _batches(self) -> Iterator[list[int]]:
        gen = self._generator()
        perm = torch.randperm(self.n, generator=gen)
        step = self.batch_size * self.world_size
        if self.lengths is not None:
            perm = bucket_by_length(perm, self.lengths, step, gen)
        padded = math.ceil(self.n / self.world_size) * self.world_size
        if padded > self.n:
            perm = torch.cat([perm, perm[: padded - self.n]])
        for start in range(0, padded, step):
            yield _rank_slice(perm[start : start + step], self.rank, self.world_size)


class MixedTaskBatches(_EpochSampler):
    """Mixed data: each step picks one task with probability ``probs[t]`` and draws a batch of it.

    Each task's indices are a seeded stream, reshuffled whenever it runs out. All ranks pick the
    same task at the same step and split its global batch, so every step is single-task and
    DDP-consistent. One epoch has ``ceil(total / (batch_size * world_size))`` steps.
    """

    def __init__(
        self,
        task_indices: Sequence[torch.Tensor],
        probs: Sequence[float],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        lengths: torch.Tensor | None = None,
    ):
        super().__init__(seed)
        self.task_indices = [torch.as_tensor(t, dtype=torch.long) for t in task_indices]
        self.probs = torch.tensor(probs, dtype=torch.double)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.lengths = lengths  # row lengths for length-bucketed batches (None: plain shuffle)

    def _shuffled(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        stream = idx[torch.randperm(len(idx), generator=gen)]
        if self.lengths is not None:
            stream = bucket_by_length(stream, self.lengths, self.batch_size * self.world_size, gen)
        return stream

    def __len__(self) -> int:
        total = sum(len(t) for t in self.task_indices)
        return math.ceil(total / (self.batch_size * self.world_size))

    def _batches(self) -> Iterator[list[int]]:
        gen = self._generator()
        streams = [self._shuffled(t, gen) for t in self.task_indices]
        cursors = [0] * len(streams)
        step = self.batch_size * self.world_size
        for _ in range(len(self)):
            t = int(torch.multinomial(self.probs, 1, generator=gen))
            chunk, filled = [], 0  # pieces of the batch; a stream that runs out is reshuffled
            while filled < step:
                if cursors[t] == len(streams[t]):
                    streams[t], cursors[t] = self._shuffled(self.task_indices[t], gen), 0
                take = min(step - filled, len(streams[t]) - cursors[t])
                chunk.append(streams[t][cursors[t] : cursors[t] + take])
                cursors[t] += take
                filled += take
            yield _rank_slice(torch.cat(chunk), self.rank, self.world_size)


class SequentialBatches(SequentialSampler):
    """Evaluation (and overfitting): groups of indices split into contiguous, unpadded per-rank shards.

    Groups are evaluated one after another, so a group (one task's data in mixed mode) never
    shares a batch with another. Ranks may run different numbers of batches; metrics are
    synchronised once per epoch by torchmetrics, so nothing waits on a missing step.
    It is a ``SequentialSampler`` so that Lightning's ``overfit_batches`` keeps it instead of
    swapping in a per-sample sampler that would break the batch format.
    """

    def __init__(self, groups: Sequence[torch.Tensor], batch_size: int, rank: int = 0, world_size: int = 1):
        super().__init__(groups)
        self.batches: list[list[int]] = []
        for group in groups:
            shard = torch.tensor_split(torch.as_tensor(group, dtype=torch.long), world_size)[rank]
            self.batches += [b.tolist() for b in torch.split(shard, batch_size) if len(b)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)


def task_probabilities(sizes: Sequence[int], sampling: str, temperature: float = 1.0) -> list[float]:
    """Probability of drawing each task in mixed mode.

    ``proportional``: p ∝ n_t; ``uniform``: p = 1/T; ``temperature``: p ∝ n_t^(1/temperature).
    """
    n = torch.tensor(sizes, dtype=torch.double)
    if sampling == "proportional":
        w = n
    elif sampling == "uniform":
        w = torch.ones_like(n)
    elif sampling == "temperature":
        w = n ** (1.0 / temperature)
    else:
        raise ValueError(f"unknown sampling {sampling!r}")
    return (w / w.sum()).tolist()
