"""No gradient clipping."""

from peftlab.clipping.base import Clipping


class NoClipping(Clipping):
    """Leaves gradients as they are."""

    name = "none"

    def clip(self, module, optimizer) -> None:
        """Do nothing."""
