"""One task's texts and labels from the user's CSV, TSV, JSON-lines or parquet files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from peftlab.data.table import LabelledTable
from peftlab.data.text_inputs import TextColumn
from peftlab.errors import ConfigError

FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_frame(path: Path):
    """A pandas DataFrame of ``path`` (format from the suffix).

    Text is decoded as UTF-8 with invalid bytes replaced by U+FFFD ("�"): real corpora hold
    stray Latin-1/Windows-1252 bytes, and one bad byte must not stop a run. CSV/TSV cells are
    read as strings, so texts such as "NA" stay texts; TSV is read without quote processing
    (as GLUE's files are written).
    """
    import pandas as pd

    if not path.is_file():
        raise ConfigError(str(path), "no such file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(str(path), f"unsupported file type {suffix!r}; allowed: {', '.join(FORMATS)}")
    try:
        if suffix in (".csv", ".tsv"):
            extra = {"sep": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace", **extra)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        text = path.read_bytes().decode("utf-8", errors="replace")
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(str(path), f"cannot read it as {suffix}: {str(exc).splitlines()[0]}") from None


class TextFileSource:
    """A task's rows from text files: a text column, an optional second text, a label column.

    Give ``train`` alone (validation and test are carved out of it by ``data.val_fraction`` and
    ``data.test_fraction``) or with ``validation`` and/or ``test`` files.

    Args:
        train, validation, test: file paths (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``).
        text: the text column.
        text_pair: the second text of sentence-pair tasks (optional).
        label: the label column.
        classes: for classification with named labels, the label values in class-id order
            (``[negative, neutral, positive]``); without it labels must be integer class ids
            (classification) or numbers (regression).
    """

    def __init__(
        self, train: str, validation: str | None = None, test: str | None = None, text: str = "text", text_pair: str | None = None, label: str = "label", classes: Sequence[Any] | None = None
    ):
        self.files = {"train": train, "val": validation, "test": test}
        self.text, self.text_pair, self.label = text, text_pair, label
        self.classes = [str(c) for c in classes] if classes is not None else None

    def load(self) -> dict[str, LabelledTable]:
        """Read every given file."""
        return {split: self.read(Path(path)) for split, path in self.files.items() if path}

    def read(self, path: Path) -> LabelledTable:
        """One file as a table with one label column (named like the file's label column)."""
        frame = read_frame(path)
        columns = [c for c in (self.text, self.text_pair, self.label) if c is not None]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ConfigError(str(path), f"no column(s) {missing}; columns: {[str(c) for c in frame.columns]}")
        if len(frame) == 0:
            raise ConfigError(str(path), "has no rows")
        texts = TextColumn(_strings(frame[self.text]), _strings(frame[self.text_pair]) if self.text_pair else None)
        labels = [self._label_value(path, row, value) for row, value in enumerate(frame[self.label].tolist(), start=1)]
        return LabelledTable(texts, {self.label: torch.tensor(labels, dtype=torch.float32)})

    def _label_value(self, path: Path, row: int, value: Any) -> float:
        where = f"data row {row}, column {self.label!r}"
        if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value.strip().lower() in ("", "nan")):
            raise ConfigError(str(path), f"{where}: the label is missing (NaN or empty); every row needs a label")
        if self.classes is not None:
            key = str(value).strip()
            if key not in self.classes:
                raise ConfigError(str(path), f"{where}: label {key!r} is not one of the declared classes {self.classes}")
            return float(self.classes.index(key))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(str(path), f"{where}: label {value!r} is not a number; declare the label names with `classes`") from None
        if math.isnan(number):
            raise ConfigError(str(path), f"{where}: the label is NaN; every row needs a label")
        return number


def _strings(series) -> list[str]:
    # missing cells (JSON null, parquet None) become empty texts
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series.tolist()]
