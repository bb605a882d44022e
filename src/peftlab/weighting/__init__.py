"""Task weighting methods, one per file, behind :class:`Weighting`."""

from peftlab.weighting.base import Weighting
from peftlab.weighting.equal import EqualWeighting
from peftlab.weighting.fixed import FixedWeighting

__all__ = ["Weighting", "EqualWeighting", "FixedWeighting"]
