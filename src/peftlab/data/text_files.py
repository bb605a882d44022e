"""Texts and labels from the user's CSV, TSV, JSON-lines or parquet files (one task, or several sharing a file)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from peftlab.data.chat_rows import conversation
from peftlab.data.table import LabelledTable
from peftlab.data.text_inputs import Conversations, PromptResponses, TextColumn
from peftlab.errors import ConfigError

FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
FLOAT32_MAX = float(torch.finfo(torch.float32).max)  # labels are stored as float32


def absolute_path(path: str | Path) -> Path:
    """``path`` made absolute: a relative path is taken from the directory the command ran in."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def read_frame(path: Path):
    """A pandas DataFrame of ``path`` (format from the suffix).

    Text is decoded as UTF-8 with invalid bytes replaced by U+FFFD ("�"): real corpora hold
    stray Latin-1/Windows-1252 bytes, and one bad byte must not stop a run. CSV/TSV cells are
    read as strings, so texts such as "NA" stay texts; TSV is read without quote processing
    (as GLUE's files are written). A CSV/TSV header that names a column twice is refused
    (pandas would rename the second one and the first would be used silently).
    """
    import pandas as pd

    path = absolute_path(path)
    if not path.is_file():
        raise ConfigError(str(path), "no such file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(str(path), f"unsupported file type {suffix!r}; allowed: {', '.join(FORMATS)}")
    try:
        if suffix in (".csv", ".tsv"):
            extra = {"sep": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
            options = dict(dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace", **extra)
            header = pd.read_csv(path, header=None, nrows=1, **options)
            check_unique_header(path, [str(v) for v in header.iloc[0].tolist()] if len(header) else [])
            return pd.read_csv(path, **options)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        text = path.read_bytes().decode("utf-8", errors="replace")
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except (ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(path), f"cannot read it as {suffix}: {str(exc).splitlines()[0]}") from None


def check_unique_header(path: Path, names: Sequence[str]) -> None:
    """A ConfigError naming the file and the first column name its header holds twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(str(path), f"the header names column {name!r} twice; rename one of them")
        seen.add(name)


def finite_label(path: Path, where: str, value: Any) -> float:
    """``value`` as a float label, or a ConfigError naming the file, row and column when it is not a
    finite number that float32 can hold (``inf`` and ``1e39`` would train on infinities)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(str(path), f"{where}: label {value!r} is not a number; declare the label names with `classes`") from None
    if math.isnan(number):
        raise ConfigError(str(path), f"{where}: the label is NaN; every row needs a label")
    if not abs(number) <= FLOAT32_MAX:
        raise ConfigError(str(path), f"{where}: label {value!r} is not a finite number (labels must lie within ±{FLOAT32_MAX:.3g})")
    return number


class TextFileSource:
    """Rows from text files: a text column, an optional second text, and label column(s).

    Give ``path`` alone (validation and test are carved out of it by ``data.val_fraction`` and
    ``data.test_fraction``) or with ``validation`` and/or ``test`` files. Relative paths are taken
    from the directory the command ran in; every file error names the absolute path.

    Args:
        path: the file (the training file when ``validation``/``test`` are given):
            ``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``.
        validation, test: optional files of those splits.
        text: the text column.
        text_pair: the second text of sentence-pair tasks (optional).
        label: the label column.
        classes: for classification with named labels, the label values in class-id order
            (``[negative, neutral, positive]``); without it labels must be integer class ids
            (classification) or numbers (regression).
        prompt, response: for a causal-LM task, its prompt and response columns (both given:
            the rows are prompt / response pairs, and ``text``, ``label`` and ``classes`` are
            not read). A file without one of them fails with one line naming
            ``<config_key>.prompt`` / ``.response``; a prompt too long for ``data.max_length`` is
            truncated from the left, with a counted warning
            (:func:`~peftlab.data.tokenize_lm.fit_to_length`).
        messages: for a causal-LM task, its chat column instead: each cell a list of
            ``{role, content}`` turns (JSON lines hold it as is; CSV cells as a JSON string); the
            loss reads the assistant turns only (:mod:`~peftlab.data.tokenize_chat`).
        chat_template: how chat rows become text: ``auto`` (the tokenizer's chat template, or
            the plain template when it has none), ``tokenizer`` (no template is an error) or ``plain``.
    """

    config_key = "data.source"  # how error messages name this source's settings (data.sources.<task> for a task's own)

    def __init__(
        self,
        path: str,
        validation: str | None = None,
        test: str | None = None,
        text: str = "text",
        text_pair: str | None = None,
        label: str = "label",
        classes: Sequence[Any] | None = None,
        prompt: str | None = None,
        response: str | None = None,
        messages: str | None = None,
        chat_template: str = "auto",
    ):
        self.files = {split: absolute_path(p) if p else None for split, p in (("train", path), ("val", validation), ("test", test))}
        self.text, self.text_pair, self.label = text, text_pair, label
        self.prompt, self.response = prompt, response
        self.messages, self.chat_template = messages, chat_template
        self.classes = [str(c) for c in classes] if classes is not None else None
        # output label column -> (file column, class names); one entry, or one per task of a joint source
        self.columns: dict[str, tuple[str, list[str] | None]] = {label: (label, self.classes)}
        self.task_classes: dict[str, list[str] | None] | None = None

    @classmethod
    def joint(cls, files: Mapping[str, Any], text: str, text_pair: str | None, labels: Mapping[str, tuple[str, Sequence[Any] | None]]) -> "TextFileSource":
        """One source for several tasks that read the same file(s): ``labels`` maps each task name
        to its (label column, classes); the table's label columns are named by task."""
        source = cls(files["train"], files.get("val"), files.get("test"), text, text_pair)
        source.classes = None
        source.columns = {task: (column, [str(c) for c in classes] if classes is not None else None) for task, (column, classes) in labels.items()}
        source.task_classes = {task: classes for task, (_, classes) in source.columns.items()}
        return source

    @property
    def path(self) -> Path:
        """The (training) file, absolute."""
        return self.files["train"]

    def load(self) -> dict[str, LabelledTable]:
        """Read every given file."""
        return {split: self.read(path) for split, path in self.files.items() if path}

    def read(self, path: Path) -> LabelledTable:
        """One file as a table with the source's label column(s)."""
        path = absolute_path(path)
        return self.table(path, read_frame(path))

    def table(self, path: Path | str, frame) -> LabelledTable:
        """The rows of ``frame`` (read from ``path``, which error messages name) as a table."""
        if self.messages is not None:
            return self._read_conversations(path, frame)
        if self.prompt is not None and self.response is not None:
            return self._read_prompt_responses(path, frame)
        columns = [c for c in (self.text, self.text_pair, *(c for c, _ in self.columns.values())) if c is not None]
        missing = list(dict.fromkeys(c for c in columns if c not in frame.columns))
        if missing:
            raise ConfigError(str(path), f"no column(s) {missing}; columns: {[str(c) for c in frame.columns]}")
        if len(frame) == 0:
            raise ConfigError(str(path), "has no rows")
        texts = TextColumn(_strings(frame[self.text]), _strings(frame[self.text_pair]) if self.text_pair else None)
        labels = {}
        for name, (column, classes) in self.columns.items():
            values = [_label_value(path, column, classes, row, value) for row, value in enumerate(frame[column].tolist(), start=1)]
            labels[name] = torch.tensor(values, dtype=torch.float32)
        return LabelledTable(texts, labels)

    def _read_prompt_responses(self, path: Path | str, frame) -> LabelledTable:
        """Prompt / response rows; each row is labelled (1.0) for the task(s) of this source."""
        for field, column in (("prompt", self.prompt), ("response", self.response)):
            if column not in frame.columns:
                raise ConfigError(f"{self.config_key}.{field}", f"no column {column!r} in {path}; columns: {[str(c) for c in frame.columns]}")
        if len(frame) == 0:
            raise ConfigError(str(path), "has no rows")
        pairs = PromptResponses(_strings(frame[self.prompt]), _strings(frame[self.response]))
        return LabelledTable(pairs, {name: torch.ones(len(frame)) for name in self.columns})

    def _read_conversations(self, path: Path | str, frame) -> LabelledTable:
        """Chat rows; each row is labelled (1.0) for the task(s) of this source."""
        key = f"{self.config_key}.messages"
        if self.messages not in frame.columns:
            raise ConfigError(key, f"no column {self.messages!r} in {path}; columns: {[str(c) for c in frame.columns]}")
        if len(frame) == 0:
            raise ConfigError(str(path), "has no rows")
        rows = [conversation(v, f"{path} row {i}", key) for i, v in enumerate(frame[self.messages].tolist(), start=1)]
        return LabelledTable(Conversations(rows, self.chat_template, self.config_key), {name: torch.ones(len(frame)) for name in self.columns})


def _label_value(path: Path, column: str, classes: list[str] | None, row: int, value: Any) -> float:
    where = f"data row {row}, column {column!r}"
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value.strip().lower() in ("", "nan")):
        raise ConfigError(str(path), f"{where}: the label is missing (NaN or empty); every row needs a label")
    if classes is not None:
        key = str(value).strip()
        if key not in classes:
            raise ConfigError(str(path), f"{where}: label {key!r} is not one of the declared classes {classes}")
        return float(classes.index(key))
    return finite_label(path, where, value)


def _strings(series) -> list[str]:
    # missing cells (JSON null, parquet None) become empty texts
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series.tolist()]
