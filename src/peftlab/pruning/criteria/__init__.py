"""Pruning criteria: one file per criterion behind :class:`~peftlab.pruning.criteria.base.Criterion`."""

from peftlab.pruning.criteria.base import Criterion
from peftlab.pruning.criteria.gate_gradient import GateGradient
from peftlab.pruning.criteria.global_magnitude import GlobalMagnitude
from peftlab.pruning.criteria.magnitude import Magnitude
from peftlab.pruning.criteria.movement import Movement
from peftlab.pruning.criteria.random import Random
from peftlab.pruning.criteria.sparsegpt import SparseGPT
from peftlab.pruning.criteria.structured import Heads, Neurons
from peftlab.pruning.criteria.wanda import Wanda

__all__ = ["Criterion", "GateGradient", "GlobalMagnitude", "Heads", "Magnitude", "Movement", "Neurons", "Random", "SparseGPT", "Wanda"]
