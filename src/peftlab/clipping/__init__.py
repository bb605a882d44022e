"""Gradient clipping policies (``strategy/clipping=<name>``)."""

from peftlab.clipping.agc import AGCClipping
from peftlab.clipping.base import Clipping, drop_grads, global_norm, grads_of
from peftlab.clipping.none import NoClipping
from peftlab.clipping.norm import NormClipping
from peftlab.clipping.per_task import PerTaskClipping
from peftlab.clipping.value import ValueClipping

__all__ = ["Clipping", "NoClipping", "NormClipping", "ValueClipping", "AGCClipping", "PerTaskClipping", "drop_grads", "global_norm", "grads_of"]
