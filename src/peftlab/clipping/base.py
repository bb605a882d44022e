"""Gradient clipping policies, applied from the LightningModule's ``configure_gradient_clipping``."""

from __future__ import annotations

import lightning as L
from torch.optim import Optimizer


class Clipping:
    """Clips the gradients of ``module`` before the optimizer step.

    Called by Lightning after gradients are unscaled (mixed precision), so thresholds are in
    true gradient units.
    """

    name = "base"

    def clip(self, module: L.LightningModule, optimizer: Optimizer) -> None:
        """Clip the gradients in place."""
        raise NotImplementedError
