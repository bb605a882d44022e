"""Task weighting methods, one per file, behind :class:`Weighting` / :class:`GradientWeighting`."""

from peftlab.weighting.base import GradientWeighting, Weighting
from peftlab.weighting.cagrad import CAGradWeighting
from peftlab.weighting.dwa import DWAWeighting
from peftlab.weighting.equal import EqualWeighting
from peftlab.weighting.famo import FAMOWeighting
from peftlab.weighting.fixed import FixedWeighting
from peftlab.weighting.gradnorm import GradNormWeighting
from peftlab.weighting.imtl import IMTLWeighting
from peftlab.weighting.mgda import MGDAWeighting
from peftlab.weighting.pcgrad import PCGradWeighting
from peftlab.weighting.rlw import RLWWeighting
from peftlab.weighting.uncertainty import UncertaintyWeighting

__all__ = [
    "Weighting",
    "GradientWeighting",
    "EqualWeighting",
    "FixedWeighting",
    "UncertaintyWeighting",
    "DWAWeighting",
    "RLWWeighting",
    "GradNormWeighting",
    "PCGradWeighting",
    "CAGradWeighting",
    "MGDAWeighting",
    "IMTLWeighting",
    "FAMOWeighting",
]
