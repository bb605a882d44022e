"""Gradient clipping policies (``strategy/clipping=<name>``)."""

from peftlab.clipping.base import Clipping
from peftlab.clipping.none import NoClipping
from peftlab.clipping.norm import NormClipping

__all__ = ["Clipping", "NoClipping", "NormClipping"]
