"""Small hand-written gradient matrices and a set-up helper shared by the weighting property tests."""

from __future__ import annotations

import torch

TASKS3 = ["a", "b", "c"]
CONFLICT = torch.tensor([[1.0, 0.0, 0.0], [-0.8, 0.6, 0.0], [0.1, -0.9, 0.4]], dtype=torch.float64)
AGREE = torch.tensor([[1.0, 0.2, 0.0], [0.8, 0.1, 0.3], [0.9, 0.0, 0.1]], dtype=torch.float64)


def made(cls, tasks=TASKS3, **kw):
    """A weighting of class ``cls`` built with ``kw`` and set up for ``tasks``."""
    m = cls(**kw)
    m.setup(tasks)
    return m
