"""Clip every gradient entry to [−clip_value, clip_value] (the seed's "linear" clipping)."""

import torch

from peftlab.clipping.base import Clipping
from peftlab.validators import check_positive


class ValueClipping(Clipping):
    """Element-wise clamp of all gradients (torch's ``clip_grad_value_``)."""

    name = "value"

    def __init__(self, clip_value: float = 0.5, max_bad_steps: int = 5):
        super().__init__(max_bad_steps)
        self.clip_value = check_positive("strategy.clipping.clip_value", clip_value)

    def clip(self, module, optimizer) -> None:
        """Clamp each gradient entry."""
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_value_(params, self.clip_value)
