"""MultiTaskDataModule: splits a data source and serves batches that carry task ids."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import lightning as L
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from peftlab.data.batching import MixedTaskBatches, MultiTaskTensors, SequentialBatches, ShuffledBatches, task_probabilities
from peftlab.data.table import LabelledTable
from peftlab.tasks import TaskSpec, parse_task_specs
from peftlab.errors import ConfigError

MODES = ("joint", "mixed")
SAMPLINGS = ("proportional", "uniform", "temperature")


class MultiTaskDataModule(L.LightningDataModule):
    """Serves several tasks from one data source, jointly or mixed.

    * ``joint``: every sample is labelled for every task (one batch trains all tasks).
    * ``mixed``: each task has its own samples (a source whose rows are labelled for every task
      is split into disjoint per-task subsets); each training batch holds one task, drawn with
      ``sampling`` = ``proportional`` (p ∝ n_t), ``uniform`` or ``temperature``
      (p ∝ n_t^(1/temperature)).

    Batches are ``{"inputs", "y": [B, T], "task_mask": [B, T]}`` (see :class:`MultiTaskTensors`).

    Args:
        source: an object with ``load() -> LabelledTable`` (and optionally ``stratify_label``).
        tasks: task specs (mappings with name, label, num_classes, metric).
        mode: ``joint`` or ``mixed``.
        sampling, temperature: how mixed mode draws tasks.
        batch_size: samples per batch per process (DDP multiplies it by the world size).
        eval_batch_size: batch size for validation/test (defaults to 4 × batch_size).
        val_fraction, test_fraction: shares of the data held out, each in (0, 1).
        seed: seeds the split and every shuffle.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
    """

    def __init__(
        self,
        source: Any,
        tasks: Sequence[Mapping[str, Any]],
        mode: str = "joint",
        sampling: str = "proportional",
        temperature: float = 2.0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        self.source = source
        self.tasks: list[TaskSpec] = parse_task_specs(tasks)
        _check_choice("data.mode", mode, MODES)
        _check_choice("data.sampling", sampling, SAMPLINGS)
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ConfigError("data.temperature", f"must be a number > 0; got {temperature!r}")
        for key, value in (("data.batch_size", batch_size), ("data.eval_batch_size", eval_batch_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(key, f"must be a positive integer; got {value!r}")
        for key, value in (("data.val_fraction", val_fraction), ("data.test_fraction", test_fraction)):
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(key, f"must be a number in (0, 1); got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ConfigError("data.val_fraction", f"val_fraction + test_fraction must be < 1; got {val_fraction + test_fraction}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError("data.num_workers", f"must be an integer >= 0; got {num_workers!r}")
        self.mode, self.sampling, self.temperature = mode, sampling, float(temperature)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 4 * batch_size
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.num_workers = int(seed), num_workers
        self.splits: dict[str, MultiTaskTensors] = {}
        self._task_rows: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ set-up
    @property
    def task_names(self) -> list[str]:
        """Task names in order; column ``t`` of ``y`` and ``task_mask`` is task ``t``."""
        return [t.name for t in self.tasks]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (after :meth:`setup`)."""
        self.setup()
        return tuple(self.splits["train"].x.shape[1:])

    def setup(self, stage: str | None = None) -> None:
        """Load the source once, check the labels, split, and arrange the task columns."""
        if self.splits:
            return
        table = self.source.load()
        self._check_labels(table)
        stratify_name = getattr(self.source, "stratify_label", None)
        parts = self._split(table, stratify_name)
        for offset, (split, rows) in enumerate(parts.items()):
            self.splits[split], self._task_rows[split] = self._arrange(table.subset(rows), offset)

    def _check_labels(self, table: LabelledTable) -> None:
        for i, task in enumerate(self.tasks):
            if task.label not in table.labels:
                raise ConfigError(f"data.tasks[{i}].label", f"unknown label {task.label!r}; allowed: {', '.join(table.labels)}")
            column = table.labels[task.label]
            if not task.is_regression:
                bad = (column != column.round()) | (column < 0) | (column >= task.num_classes)
                if bool(bad.any()):
                    raise ConfigError(
                        f"data.tasks[{i}].num_classes",
                        f"labels of {task.label!r} must be integers in [0, {task.num_classes}); found {column[bad][0].item()}",
                    )

    def _split(self, table: LabelledTable, stratify_name: str | None) -> dict[str, torch.Tensor]:
        rows = torch.arange(len(table)).numpy()
        strat = table.labels[stratify_name].numpy() if stratify_name in table.labels else None
        held = self.val_fraction + self.test_fraction
        train, rest = train_test_split(rows, test_size=held, random_state=self.seed, stratify=strat)
        strat_rest = strat[rest] if strat is not None else None
        val, test = train_test_split(rest, test_size=self.test_fraction / held, random_state=self.seed, stratify=strat_rest)
        return {"train": torch.as_tensor(train), "val": torch.as_tensor(val), "test": torch.as_tensor(test)}

    def _arrange(self, table: LabelledTable, offset: int) -> tuple[MultiTaskTensors, list[torch.Tensor]]:
        n, num_tasks = len(table), len(self.tasks)
        y = torch.stack([table.labels[t.label] for t in self.tasks], dim=1)
        if self.mode == "joint":
            mask = torch.ones(n, num_tasks, dtype=torch.bool)
            return MultiTaskTensors(table.x, y, mask), [torch.arange(n)]
        # mixed: disjoint per-task subsets of the rows, each labelled for its own task only
        gen = torch.Generator().manual_seed(self.seed + offset)
        owner = torch.empty(n, dtype=torch.long)
        owner[torch.randperm(n, generator=gen)] = torch.arange(n) % num_tasks
        mask = torch.nn.functional.one_hot(owner, num_tasks).bool()
        y = torch.where(mask, y, torch.zeros_like(y))
        return MultiTaskTensors(table.x, y, mask), [torch.nonzero(owner == t).flatten() for t in range(num_tasks)]

    # ------------------------------------------------------------- dataloaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split: str, sampler) -> DataLoader:
        # batch_size=None: each sampler item is already a list of indices (one batch).
        return DataLoader(self.splits[split], sampler=sampler, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled joint batches, or single-task batches drawn by ``sampling`` in mixed mode."""
        self.setup()
        rank, world = self._rank_world()
        if getattr(getattr(self, "trainer", None), "overfit_batches", 0):  # debug=overfit: the same batches every epoch
            sampler = SequentialBatches(self._task_rows["train"], self.batch_size, rank, world)
        elif self.mode == "joint":
            sampler = ShuffledBatches(len(self.splits["train"]), self.batch_size, self.seed, rank, world)
        else:
            groups = self._task_rows["train"]
            probs = task_probabilities([len(g) for g in groups], self.sampling, self.temperature)
            sampler = MixedTaskBatches(groups, probs, self.batch_size, self.seed, rank, world)
        return self._loader("train", sampler)

    def _eval_loader(self, split: str) -> DataLoader:
        self.setup()
        rank, world = self._rank_world()
        smallest = min(len(g) for g in self._task_rows[split])
        if smallest < world:  # a rank without batches would leave the others waiting under DDP
            raise ConfigError(f"data.{split}_fraction", f"the {split} split has a task with {smallest} sample(s), fewer than the {world} processes; raise data.{split}_fraction")
        return self._loader(split, SequentialBatches(self._task_rows[split], self.eval_batch_size, rank, world))

    def val_dataloader(self) -> DataLoader:
        """Validation batches, unpadded shards per rank."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches, unpadded shards per rank."""
        return self._eval_loader("test")

    def num_train_samples(self) -> int:
        """Number of training samples (one epoch in joint mode)."""
        self.setup()
        return len(self.splits["train"])


def _check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(allowed)}; got {value!r}")
