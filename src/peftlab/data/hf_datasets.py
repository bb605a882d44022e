"""A task's rows from a Hugging Face ``datasets`` dataset: a hub name, or a local folder (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from peftlab.data.table import LabelledTable
from peftlab.data.text_files import TextFileSource, absolute_path
from peftlab.errors import ConfigError

#: our split -> the dataset's split it is read from when ``splits`` names none (missing val/test are carved out of train)
DEFAULT_SPLITS = {"train": "train", "val": "validation", "test": "test"}
SPLIT_KEYS = {"train": "train", "val": "validation", "test": "test"}  # how splits are named in the config


class HFDatasetSource(TextFileSource):
    """One task's rows from a ``datasets`` dataset (``data.sources.<task>.dataset``).

    ``dataset`` is a folder written by ``save_to_disk`` (read with ``load_from_disk``), another
    local folder ``load_dataset`` reads (data files), or a hub name (``load_dataset(name,
    subset)``: downloaded once into the Hugging Face cache, offline afterwards with
    ``HF_DATASETS_OFFLINE=1``). Columns are named as for text files: ``text`` (+ ``text_pair``)
    and ``label`` (+ ``classes``) for classification / regression, ``prompt`` and ``response``
    or ``messages`` (+ ``chat_template``) for causal-LM tasks (see
    :class:`~peftlab.data.text_files.TextFileSource`).

    Args:
        dataset: hub name or local folder (relative: from the directory the command ran in).
        subset: the dataset's configuration name (``load_dataset(name, subset)``), or None.
        splits: ``{train, validation, test}`` → the dataset's split names; a split left out (or
            null) of validation / test is carved out of train (``data.val_fraction``,
            ``data.test_fraction``). None: ``train``, and ``validation`` / ``test`` when the
            dataset has them. A named split the dataset lacks is one error line.
        config_key: how errors name this source (``data.sources.<task>``).
    """

    def __init__(
        self,
        dataset: str,
        subset: str | None = None,
        splits: Mapping[str, str | None] | None = None,
        text: str = "text",
        text_pair: str | None = None,
        label: str = "label",
        classes: Sequence[Any] | None = None,
        prompt: str | None = None,
        response: str | None = None,
        messages: str | None = None,
        chat_template: str = "auto",
        config_key: str = "data.source",
    ):
        super().__init__(str(dataset), None, None, text, text_pair, label, classes, prompt, response, messages, chat_template)
        self.config_key = config_key
        self.dataset, self.subset = str(dataset), subset
        if splits is not None:
            unknown = sorted(set(splits) - set(SPLIT_KEYS.values()))
            if unknown:
                raise ConfigError(f"{config_key}.splits", f"unknown key(s) {unknown}; allowed: train, validation, test")
        self.splits = dict(splits) if splits is not None else None

    def _local(self) -> Path | None:
        path = absolute_path(self.dataset)
        return path if path.exists() else None

    def open(self):
        """The ``DatasetDict`` (a single ``Dataset`` becomes its ``train`` split)."""
        import datasets

        local = self._local()
        if local is not None and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            data = datasets.load_from_disk(str(local))
        elif local is None and self.dataset.startswith((".", "/", "~")):
            raise ConfigError(f"{self.config_key}.dataset", f"no such folder {absolute_path(self.dataset)}")
        else:
            try:
                data = datasets.load_dataset(str(local) if local is not None else self.dataset, self.subset)
            except (ConnectionError, FileNotFoundError, OSError) as err:  # offline, or neither a local folder nor a hub dataset
                where = "a local folder (none at " + str(absolute_path(self.dataset)) + ") nor a Hugging Face Hub dataset"
                raise ConfigError(f"{self.config_key}.dataset", f"{self.dataset!r} is neither {where} reachable now: {str(err).splitlines()[0][:200]}") from None
        return data if isinstance(data, datasets.DatasetDict) else datasets.DatasetDict({"train": data})

    def chosen_splits(self, available: Sequence[str]) -> dict[str, str]:
        """Our split -> the dataset's split, checked against the ``available`` ones."""
        if self.splits is None:
            return {ours: theirs for ours, theirs in DEFAULT_SPLITS.items() if theirs in available}
        chosen = {ours: self.splits.get(SPLIT_KEYS[ours], DEFAULT_SPLITS["train"] if ours == "train" else None) for ours in SPLIT_KEYS}
        for ours, theirs in chosen.items():
            if theirs is not None and theirs not in available:
                raise ConfigError(f"{self.config_key}.splits.{SPLIT_KEYS[ours]}", f"no split {theirs!r} in {self.dataset}; splits: {list(available)}")
        return {ours: theirs for ours, theirs in chosen.items() if theirs is not None}

    def load(self) -> dict[str, LabelledTable]:
        """Every chosen split as a table (columns checked as for text files)."""
        data = self.open()
        chosen = self.chosen_splits(list(data))
        if "train" not in chosen:
            raise ConfigError(f"{self.config_key}.splits.train", f"{self.dataset} has no 'train' split; name the one to train on; splits: {list(data)}")
        for ours, theirs in chosen.items():
            self.check_columns(theirs, list(data[theirs].column_names))
        return {ours: self.table(f"{self.dataset}[{theirs}]", data[theirs].to_pandas()) for ours, theirs in chosen.items()}

    def check_columns(self, split: str, columns: list[str]) -> None:
        """One line naming the setting whose column split ``split`` lacks."""
        if self.messages is not None:
            fields = {"messages": self.messages}
        elif self.prompt is not None and self.response is not None:
            fields = {"prompt": self.prompt, "response": self.response}
        else:
            fields = {"text": self.text, "text_pair": self.text_pair, "label": self.label}
        for field, column in fields.items():
            if column is not None and column not in columns:
                raise ConfigError(f"{self.config_key}.{field}", f"no column {column!r} in {self.dataset} split {split!r}; columns: {columns}")
