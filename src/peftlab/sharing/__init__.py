"""Parameter sharing policies: how tasks share the backbone, and which of its parameters train."""

from peftlab.sharing.base import PolicyBody, SharingPolicy
from peftlab.sharing.peft_adapter import PeftAdapter
from peftlab.sharing.separate import SeparateBackbones, SeparateBodies
from peftlab.sharing.shared import BitFit, FrozenBackbone, FullSharing, HardSharing, SharedBody

__all__ = [
    "BitFit", "FrozenBackbone", "FullSharing", "HardSharing", "PeftAdapter", "PolicyBody",
    "SeparateBackbones", "SeparateBodies", "SharedBody", "SharingPolicy",
]
