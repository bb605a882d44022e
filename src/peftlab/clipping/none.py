"""No gradient clipping."""

from peftlab.clipping.base import Clipping


class NoClipping(Clipping):
    """Leaves gradients as they are (the non-finite guard still applies)."""

    name = "none"

    def clip(self, module, optimizer) -> None:
        """Do nothing."""
