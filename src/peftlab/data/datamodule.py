"""MultiTaskDataModule: loads each task's data source, splits it, and serves batches that carry task ids."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from peftlab.data.batching import MixedTaskBatches, MultiTaskTensors, SequentialBatches, ShuffledBatches, task_probabilities
from peftlab.data.inputs import concat_rows, is_text
from peftlab.data.own_sources import source_groups
from peftlab.data.resumable_loader import ResumableLoader
from peftlab.data.source_splits import SPLITS, load_source_splits
from peftlab.data.table import LabelledTable
from peftlab.data.text_inputs import Conversations, PromptResponses, TextColumn, TokenizedTexts
from peftlab.data.tokenize import load_tokenizer, tokenize_cached
from peftlab.data.tokenize_chat import tokenize_conversations
from peftlab.data.tokenize_lm import tokenize_prompt_response
from peftlab.errors import ConfigError
from peftlab.tasks import TaskSpec, parse_task_specs
from peftlab.validators import check_positive

log = logging.getLogger(__name__)

MODES = ("joint", "mixed")
SAMPLINGS = ("proportional", "uniform", "temperature")


class MultiTaskDataModule(L.LightningDataModule):
    """Serves several tasks, each read from the shared ``source`` or from its own entry in ``sources``.

    A source has ``load()`` returning a :class:`LabelledTable` (split here by ``val_fraction``
    and ``test_fraction``) or a mapping ``{"train": table, "val": table, "test": table}`` of
    given splits (a missing ``val`` or ``test`` is carved out of ``train``). NaN in a label
    column means the row has no label for that task. Tables of every source are stacked, so a
    row carries labels only for the tasks of its source.

    * ``joint``: batches are drawn from all rows; each row trains the tasks it is labelled for
      (``task_mask``), so one step trains every task present in the batch.
    * ``mixed``: each training batch holds one task, drawn with ``sampling`` =
      ``proportional`` (p ∝ n_t), ``uniform`` or ``temperature`` (p ∝ n_t^(1/temperature)).
      Rows labelled for several tasks (a shared source such as digits) are first divided
      between those tasks at random, in equal shares, so every row serves one task.

    Batches are ``{"inputs", "y": [B, T], "task_mask": [B, T]}`` (see :class:`MultiTaskTensors`);
    texts are tokenised with ``tokenizer`` (cached in ``cache_dir``) and padded per batch.

    Args:
        source: the shared source (serves every task without an entry in ``sources``).
        tasks: task specs (mappings with name, label, type, num_classes, metric, metrics).
        sources: ``{task name: source}`` for tasks with data of their own: a source object or a
            plain mapping of file settings (``path``, ``text``, ``label``, ``classes``, …; see
            :mod:`peftlab.data.own_sources`); tasks that name the same file share one read of it.
        mode: ``joint`` or ``mixed``.
        sampling, temperature: how mixed mode draws tasks.
        batch_size: samples per batch per process (DDP multiplies it by the world size).
        eval_batch_size: batch size for validation/test (defaults to 4 × batch_size).
        val_fraction, test_fraction: shares held out (of each source's train split), each in (0, 1).
        seed: seeds the split and every shuffle.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        input_shape: shape of one feature-tensor input, checked against the data (the model's
            config reads it as ``${data.input_shape}``); None for texts.
        tokenizer: hub id, local directory or ``minilm`` of the tokenizer for text sources.
        max_length: texts are truncated to this many tokens.
        cache_dir: where token ids are cached (None: no cache).
        bucket_by_length: training batches of rows of similar length (less padding).
    """

    def __init__(
        self,
        source: Any = None,
        tasks: Sequence[Mapping[str, Any]] = (),
        sources: Mapping[str, Any] | None = None,
        mode: str = "joint",
        sampling: str = "proportional",
        temperature: float = 2.0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        num_workers: int = 0,
        input_shape: Sequence[int] | None = None,
        tokenizer: str | None = None,
        max_length: int = 128,
        cache_dir: str | None = None,
        bucket_by_length: bool = False,
    ):
        super().__init__()
        self.tasks: list[TaskSpec] = parse_task_specs(tasks)
        self.source, self.sources = source, dict(sources or {})
        names = self.task_names
        unknown = [k for k in self.sources if k not in names]
        if unknown:
            raise ConfigError("data.sources", f"{unknown} name no task; tasks: {', '.join(names)}")
        if source is None and len(self.sources) < len(names):
            missing = [n for n in names if n not in self.sources]
            raise ConfigError("data.source", f"tasks {missing} have no entry in data.sources, so they need the shared data.source")
        _check_choice("data.mode", mode, MODES)
        _check_choice("data.sampling", sampling, SAMPLINGS)
        check_positive("data.temperature", temperature)  # NaN, inf and negatives are refused too
        for key, value in (("data.batch_size", batch_size), ("data.eval_batch_size", eval_batch_size), ("data.max_length", max_length)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(key, f"must be a positive integer; got {value!r}")
        for key, value in (("data.val_fraction", val_fraction), ("data.test_fraction", test_fraction)):
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(key, f"must be a number in (0, 1); got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ConfigError("data.val_fraction", f"val_fraction + test_fraction must be < 1; got {val_fraction + test_fraction}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError("data.num_workers", f"must be an integer >= 0; got {num_workers!r}")
        if input_shape is not None and (isinstance(input_shape, (str, int)) or not all(isinstance(d, int) and d > 0 for d in input_shape)):
            raise ConfigError("data.input_shape", f"must be a list of positive integers (e.g. [64]); got {input_shape!r}")
        self.mode, self.sampling, self.temperature = mode, sampling, float(temperature)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 4 * batch_size
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.num_workers = int(seed), num_workers
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self.tokenizer_name, self.max_length, self.cache_dir = tokenizer, max_length, cache_dir
        self.bucket_by_length = bool(bucket_by_length)
        self.tokenizer = None
        self.splits: dict[str, MultiTaskTensors] = {}
        self._task_rows: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ set-up
    @property
    def task_names(self) -> list[str]:
        """Task names in order; column ``t`` of ``y`` and ``task_mask`` is task ``t``."""
        return [t.name for t in self.tasks]

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one feature-tensor input (``data.input_shape``, else read from the data); None for texts."""
        if self._input_shape is not None:
            return self._input_shape
        self.setup()
        x = self.splits["train"].x
        return tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None

    def setup(self, stage: str | None = None) -> None:
        """Load every source once, check the labels, split, and arrange the task columns."""
        if self.splits:
            return
        parts: dict[str, list[LabelledTable]] = {s: [] for s in SPLITS}
        for key, source, task_ids in self._groups():
            tables = load_source_splits(key, source, self.tasks, task_ids, self.val_fraction, self.test_fraction, self.seed, self._tokenized)
            for split, table in tables.items():
                parts[split].append(table)
        for offset, split in enumerate(SPLITS):
            x = concat_rows([p.x for p in parts[split]])
            y = torch.cat([torch.stack([p.labels[t.name] for t in self.tasks], 1) for p in parts[split]])
            self._check_input_shape(x)
            self.splits[split], self._task_rows[split] = self._arrange(x, y, offset)
        self._log_sizes()

    def _groups(self) -> list[tuple[str, Any, list[int]]]:
        """``(config key, source, indices of the tasks it serves)`` for each source (tasks whose
        plain ``data.sources`` mappings name the same file share one joint source)."""
        return source_groups(self.tasks, self.source, self.sources)

    def _tokenized(self, table: LabelledTable) -> LabelledTable:
        """Raw texts replaced by their token ids (the tokenizer is loaded on first use; prompt / response
        rows are tokenised without the on-disk cache)."""
        if not isinstance(table.x, (TextColumn, PromptResponses, Conversations)):
            return table
        if self.tokenizer is None:
            if not self.tokenizer_name:
                raise ConfigError("data.tokenizer", "text data needs a tokenizer: a hub id, a local directory or minilm")
            self.tokenizer = load_tokenizer(self.tokenizer_name)
        if isinstance(table.x, Conversations):
            return LabelledTable(tokenize_conversations(table.x, self.tokenizer, self.max_length), table.labels)
        if isinstance(table.x, PromptResponses):
            return LabelledTable(tokenize_prompt_response(table.x, self.tokenizer, self.max_length), table.labels)
        return LabelledTable(tokenize_cached(table.x, self.tokenizer, self.max_length, self.cache_dir), table.labels)

    def _check_input_shape(self, x: Any) -> None:
        if self._input_shape is None:
            return
        if is_text(x):
            raise ConfigError("data.input_shape", "applies to feature tensors only; set it to null for text data")
        if tuple(x.shape[1:]) != self._input_shape:
            raise ConfigError(
                "data.input_shape", f"is {list(self._input_shape)} but the source's inputs have shape {list(x.shape[1:])} (data=local_file: one entry, the number of data.source.features)"
            )

    def _arrange(self, x: Any, y: torch.Tensor, offset: int) -> tuple[MultiTaskTensors, list[torch.Tensor]]:
        mask = ~y.isnan()
        y = torch.nan_to_num(y, nan=0.0)
        num_tasks = len(self.tasks)
        if self.mode == "joint":
            return MultiTaskTensors(x, y, mask), [torch.arange(len(y))]
        # mixed: rows labelled for several tasks are divided between them in equal shares
        gen = torch.Generator().manual_seed(self.seed + offset)
        owner = torch.argmax(mask.int(), dim=1)
        multi = mask.sum(1) > 1
        for pattern in torch.unique(mask[multi], dim=0):
            rows = torch.nonzero((mask == pattern).all(1)).flatten()
            shared = torch.nonzero(pattern).flatten()
            owner[rows[torch.randperm(len(rows), generator=gen)]] = shared[torch.arange(len(rows)) % len(shared)]
        mask = torch.nn.functional.one_hot(owner, num_tasks).bool()
        y = torch.where(mask, y, torch.zeros_like(y))
        return MultiTaskTensors(x, y, mask), [torch.nonzero(owner == t).flatten() for t in range(num_tasks)]

    def _log_sizes(self) -> None:
        for split in SPLITS:
            counts = self.splits[split].task_mask.sum(0).tolist()
            per_task = ", ".join(f"{n} {c}" for n, c in zip(self.task_names, counts))
            log.info(f"data: {split} {len(self.splits[split])} rows ({per_task} labelled)")

    # ------------------------------------------------------------- dataloaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split: str, sampler) -> DataLoader:
        # batch_size=None: each sampler item is already a list of indices (one batch).
        # Training loaders keep their position in checkpoints (exact mid-epoch resume).
        loader_class = ResumableLoader if split == "train" and hasattr(sampler, "resume_at") else DataLoader
        # Its own generator: otherwise every iter(loader) draws a worker base seed from the global
        # torch RNG, and a resumed run (which creates its iterators at other moments) would drift.
        generator = torch.Generator().manual_seed(self.seed)
        return loader_class(self.splits[split], sampler=sampler, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0, generator=generator)

    def _lengths(self, split: str) -> torch.Tensor | None:
        x = self.splits[split].x
        return x.lengths if self.bucket_by_length and isinstance(x, TokenizedTexts) else None

    def train_dataloader(self) -> DataLoader:
        """Shuffled joint batches, or single-task batches drawn by ``sampling`` in mixed mode."""
        self.setup()
        rank, world = self._rank_world()
        lengths = self._lengths("train")
        if getattr(getattr(self, "trainer", None), "overfit_batches", 0):  # debug=overfit: the same batches every epoch
            sampler = SequentialBatches(self._task_rows["train"], self.batch_size, rank, world)
        elif self.mode == "joint":
            sampler = ShuffledBatches(len(self.splits["train"]), self.batch_size, self.seed, rank, world, lengths)
        else:
            groups = self._task_rows["train"]
            probs = task_probabilities([len(g) for g in groups], self.sampling, self.temperature)
            sampler = MixedTaskBatches(groups, probs, self.batch_size, self.seed, rank, world, lengths)
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
