"""The GLUE benchmark through Hugging Face ``datasets`` (downloaded by ``load_dataset``, or a local copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from peftlab.data.table import LabelledTable
from peftlab.data.text_inputs import TextColumn
from peftlab.errors import ConfigError

# GLUE task -> (text column, second text column or None, number of classes, official metrics)
GLUE_TASKS: dict[str, tuple[str, str | None, int, tuple[str, ...]]] = {
    "cola": ("sentence", None, 2, ("mcc", "acc")),
    "sst2": ("sentence", None, 2, ("acc",)),
    "mrpc": ("sentence1", "sentence2", 2, ("f1", "acc")),
    "qqp": ("question1", "question2", 2, ("f1", "acc")),
    "stsb": ("sentence1", "sentence2", 0, ("pearson", "spearman")),
    "mnli": ("premise", "hypothesis", 3, ("acc",)),
    "qnli": ("question", "sentence", 2, ("acc",)),
    "rte": ("sentence1", "sentence2", 2, ("acc",)),
    "wnli": ("sentence1", "sentence2", 2, ("acc",)),
}
HUB_ID = "nyu-mll/glue"


class GlueSource:
    """The GLUE tasks named by ``tasks`` (each task's ``label`` is its GLUE name), in one table.

    GLUE's test labels are hidden, so the official **validation** split is used as our test
    split, and our validation split is carved out of GLUE's train split (``data.val_fraction``,
    stratified by task). MNLI's test split is ``validation_matched`` by default; set
    ``mnli_test: validation_mismatched`` (e.g. in ``eval.py``) to score the mismatched set.
    Each row is labelled for its own task only; column ``task`` holds the task index.

    Args:
        tasks: the task mappings of ``data.tasks`` (``label`` = GLUE name).
        local_dir: a directory holding one ``DatasetDict.save_to_disk`` folder per GLUE name
            (``<local_dir>/cola`` …) for offline use; None: ``datasets.load_dataset("nyu-mll/glue", name)``.
        mnli_test: the MNLI split scored as test: ``validation_matched`` or ``validation_mismatched``.
    """

    stratify_label = "task"

    def __init__(self, tasks: Sequence[Any], local_dir: str | None = None, mnli_test: str = "validation_matched"):
        self.names = [str(dict(t).get("label", dict(t).get("name"))) for t in tasks]
        unknown = [n for n in self.names if n not in GLUE_TASKS]
        if unknown:
            raise ConfigError("data.tasks", f"GLUE has no task(s) {unknown}; the label of each task must be one of {', '.join(GLUE_TASKS)}")
        if mnli_test not in ("validation_matched", "validation_mismatched"):
            raise ConfigError("data.source.mnli_test", f"must be validation_matched or validation_mismatched; got {mnli_test!r}")
        self.local_dir, self.mnli_test = local_dir, mnli_test

    def _dataset(self, name: str):
        import datasets

        if self.local_dir is None:
            return datasets.load_dataset(HUB_ID, name)
        path = Path(self.local_dir) / name
        if not path.is_dir():
            raise ConfigError("data.source.local_dir", f"{path} does not exist; expected one save_to_disk folder per GLUE task")
        return datasets.load_from_disk(str(path))

    def load(self) -> dict[str, LabelledTable]:
        """``{"train": GLUE train, "test": GLUE validation}`` of every task, stacked."""
        parts: dict[str, list[tuple[int, Any]]] = {"train": [], "test": []}
        for t, name in enumerate(self.names):
            ds = self._dataset(name)
            test = self.mnli_test if name == "mnli" else "validation"
            for split, glue_split in (("train", "train"), ("test", test)):
                if glue_split not in ds:
                    raise ConfigError("data.source", f"GLUE {name} has no split {glue_split!r}; splits: {list(ds)}")
                parts[split].append((t, ds[glue_split]))
        return {split: self._table(rows) for split, rows in parts.items()}

    def _table(self, parts: list[tuple[int, Any]]) -> LabelledTable:
        texts, pairs, task_ids = [], [], []
        labels = {n: [] for n in self.names}
        for t, ds in parts:
            text, pair, _, _ = GLUE_TASKS[self.names[t]]
            n = len(ds)
            texts += [str(s) for s in ds[text]]
            pairs += [str(s) for s in ds[pair]] if pair else [None] * n
            task_ids += [t] * n
            for other in self.names:
                labels[other] += [float(v) for v in ds["label"]] if other == self.names[t] else [float("nan")] * n
        columns = {n: torch.tensor(v, dtype=torch.float32) for n, v in labels.items()}
        columns["task"] = torch.tensor(task_ids, dtype=torch.float32)
        has_pairs = any(GLUE_TASKS[n][1] for n in self.names)
        return LabelledTable(TextColumn(texts, pairs if has_pairs else None), columns)
