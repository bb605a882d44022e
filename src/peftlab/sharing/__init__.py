"""Parameter sharing policies: how tasks share the backbone, and which of its parameters train."""

from peftlab.sharing.base import AdapterLayer, PolicyBody, SharingPolicy
from peftlab.sharing.peft_adapter import PeftAdapter, PeftBody
from peftlab.sharing.separate import SeparateBackbones, SeparateBodies
from peftlab.sharing.shared import BitFit, FrozenBackbone, FullSharing, HardSharing, SharedBody

__all__ = [
    "AdapterLayer",
    "BitFit",
    "FrozenBackbone",
    "FullSharing",
    "HardSharing",
    "PeftAdapter",
    "PeftBody",
    "PolicyBody",
    "SeparateBackbones",
    "SeparateBodies",
    "SharedBody",
    "SharingPolicy",
]
