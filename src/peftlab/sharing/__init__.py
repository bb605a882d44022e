"""Parameter sharing policies: how tasks share the backbone."""

from peftlab.sharing.hard import HardSharing, SharedBody
from peftlab.sharing.separate import SeparateBackbones, SeparateBodies

__all__ = ["HardSharing", "SharedBody", "SeparateBackbones", "SeparateBodies"]
