"""The in-memory form every data source returns: inputs plus named label columns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LabelledTable:
    """``x[i]`` is one input; ``labels[name][i]`` its value in label column ``name``.

    Classification labels are integer class ids, regression labels real numbers; both are
    stored as float32 so that one batch tensor can carry every task's target.
    """

    x: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        for name, column in self.labels.items():
            if len(column) != len(self.x):
                raise ValueError(f"label column {name!r} has {len(column)} rows, inputs have {len(self.x)}")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: torch.Tensor) -> "LabelledTable":
        """Rows ``index`` of the table."""
        return LabelledTable(self.x[index], {k: v[index] for k, v in self.labels.items()})
