"""Clip the global gradient norm."""

import torch

from peftlab.clipping.base import Clipping
from peftlab.validators import check_positive


class NormClipping(Clipping):
    """Rescale all gradients together so their global L2 norm is at most ``max_norm``.

    torch's ``clip_grad_norm_`` on the gradients the optimizer will use; works the same under
    automatic and manual optimisation (the module calls it after unscaling).
    """

    name = "norm"

    def __init__(self, max_norm: float = 1.0, max_bad_steps: int = 5):
        super().__init__(max_bad_steps)
        self.max_norm = check_positive("strategy.clipping.max_norm", max_norm)

    def clip(self, module, optimizer) -> None:
        """Clip by global norm."""
        torch.nn.utils.clip_grad_norm_(_params(optimizer), self.max_norm)

    def clip_with_norm(self, module, optimizer, total_norm: torch.Tensor) -> None:
        """Scale by max_norm / total_norm (when above 1) without measuring the norm again."""
        torch.nn.utils.clip_grads_with_norm_(_params(optimizer), self.max_norm, total_norm)


def _params(optimizer):
    return [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
