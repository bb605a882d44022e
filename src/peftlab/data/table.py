"""The in-memory form every data source returns: inputs plus named label columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from peftlab.data.inputs import take_rows


@dataclass
class LabelledTable:
    """``x`` holds one input per row; ``labels[name][i]`` is row ``i``'s value in label column ``name``.

    ``x`` is a feature tensor ``[N, ...]``, raw texts (:class:`~peftlab.data.text_inputs.TextColumn`)
    or token ids (:class:`~peftlab.data.text_inputs.TokenizedTexts`). Classification labels are
    integer class ids, regression labels real numbers; both are stored as float32 so that one
    batch tensor can carry every task's target. **NaN means "this row has no label in this
    column"**: the row then trains and scores only the tasks it does have labels for (for
    example the tweets without an annotator confidence). Sources that must label every row
    reject missing labels themselves.
    """

    x: Any
    labels: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        for name, column in self.labels.items():
            if len(column) != len(self.x):
                raise ValueError(f"label column {name!r} has {len(column)} rows, inputs have {len(self.x)}")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: torch.Tensor) -> "LabelledTable":
        """Rows ``index`` of the table."""
        index = torch.as_tensor(index, dtype=torch.long)
        return LabelledTable(take_rows(self.x, index), {k: v[index] for k, v in self.labels.items()})
