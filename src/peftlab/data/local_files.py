"""Tabular data from the user's own CSV or JSON-lines file."""

from __future__ import annotations

import csv
import json
from typing import Sequence

import torch

from peftlab.data.table import LabelledTable
from peftlab.data.text_files import absolute_path, check_unique_header
from peftlab.errors import ConfigError


class LocalFileSource:
    """Numeric feature columns and label columns read from a ``.csv`` or ``.jsonl`` file.

    Args:
        path: the file; its suffix chooses the reader.
        features: names of the input columns.
        labels: names of the label columns tasks may refer to.
        stratify_label: label column used to stratify the train/val/test split (optional).
    """

    def __init__(self, path: str, features: Sequence[str], labels: Sequence[str], stratify_label: str | None = None):
        self.path = absolute_path(path)  # relative: from the directory the command ran in
        self.features = list(features)
        self.label_names = list(labels)
        self.stratify_label = stratify_label

    def _rows(self) -> list[dict]:
        if not self.path.is_file():
            raise ConfigError("data.source.path", f"file not found: {self.path}")
        try:
            if self.path.suffix == ".csv":
                with self.path.open(newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    check_unique_header(self.path, reader.fieldnames or [])  # DictReader would keep the last one silently
                    return list(reader)
            if self.path.suffix in (".jsonl", ".json"):
                with self.path.open(encoding="utf-8") as fh:
                    return [json.loads(line) for line in fh if line.strip()]
        except UnicodeDecodeError as err:
            raise ConfigError("data.source.path", f"{self.path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        raise ConfigError("data.source.path", f"unsupported file type {self.path.suffix!r}; allowed: .csv, .jsonl")

    def load(self) -> LabelledTable:
        """Read every row into tensors."""
        rows = self._rows()
        if not rows:
            raise ConfigError("data.source.path", f"{self.path} has no rows")
        for key, names in (("data.source.features", self.features), ("data.source.labels", self.label_names)):
            missing = [n for n in names if n not in rows[0]]
            if missing:
                raise ConfigError(key, f"column(s) {missing} not in {self.path}; columns: {sorted(rows[0])}")
        try:
            x = torch.tensor([[float(r[c]) for c in self.features] for r in rows], dtype=torch.float32)
            labels = {n: torch.tensor([float(r[n]) for r in rows], dtype=torch.float32) for n in self.label_names}
        except ValueError as exc:
            raise ConfigError("data.source.path", f"non-numeric value in {self.path}: {exc}") from None
        label_values = torch.stack(list(labels.values()), 1) if labels else x[:, :0]
        # features must be finite; a NaN label means "not labelled", an infinite one (or > float32's range) is an error
        for names, bad in ((self.features, ~x.isfinite()), (self.label_names, label_values.isinf())):
            bad = torch.nonzero(bad)
            if len(bad):
                row, col = int(bad[0, 0]), int(bad[0, 1])
                raise ConfigError(str(self.path), f"data row {row + 1}, column {names[col]!r}: {rows[row][names[col]]!r} is not a finite number")
        return LabelledTable(x, labels)
