"""Clip the global gradient norm."""

from peftlab.clipping.base import Clipping
from peftlab.errors import ConfigError


class NormClipping(Clipping):
    """Rescale all gradients together so their global L2 norm is at most ``max_norm``.

    Uses Lightning's ``clip_gradients`` (torch's ``clip_grad_norm_``), which also handles
    mixed-precision unscaling.
    """

    name = "norm"

    def __init__(self, max_norm: float = 1.0):
        if not isinstance(max_norm, (int, float)) or max_norm <= 0:
            raise ConfigError("strategy.clipping.max_norm", f"must be a number > 0; got {max_norm!r}")
        self.max_norm = float(max_norm)

    def clip(self, module, optimizer) -> None:
        """Clip by global norm."""
        module.clip_gradients(optimizer, gradient_clip_val=self.max_norm, gradient_clip_algorithm="norm")
