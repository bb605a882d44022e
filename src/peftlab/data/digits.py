"""The built-in example: scikit-learn's 1,797 real handwritten 8x8 digits, read offline."""

from __future__ import annotations

import torch

from peftlab.data.table import LabelledTable


class DigitsSource:
    """Handwritten digits with three label columns derived from each image's digit.

    ``digit`` (10 classes), ``parity`` (0 even / 1 odd) and ``high`` (1 when digit >= 5).
    Pixels are scaled from 0..16 to 0..1. The data ships inside scikit-learn, so nothing is
    downloaded.
    """

    stratify_label = "digit"

    def load(self) -> LabelledTable:
        """Read the images and derive the label columns."""
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
        digit = torch.tensor(bunch.target, dtype=torch.float32)
        labels = {"digit": digit, "parity": digit.remainder(2), "high": (digit >= 5).float()}
        return LabelledTable(x, labels)
