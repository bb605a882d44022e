"""Task weighting methods, one per file, behind :class:`Weighting` / :class:`GradientWeighting`."""

from peftlab.weighting.aligned_mtl import AlignedMTLWeighting
from peftlab.weighting.base import GradientWeighting, Weighting
from peftlab.weighting.cagrad import CAGradWeighting
from peftlab.weighting.config_grad import ConFIGWeighting
from peftlab.weighting.cr_mogm import CRMOGMWeighting
from peftlab.weighting.db_mtl import DBMTLWeighting
from peftlab.weighting.dualproj import DualProjWeighting
from peftlab.weighting.dwa import DWAWeighting
from peftlab.weighting.equal import EqualWeighting
from peftlab.weighting.excess_mtl import ExcessMTLWeighting
from peftlab.weighting.fairgrad import FairGradWeighting
from peftlab.weighting.famo import FAMOWeighting
from peftlab.weighting.fixed import FixedWeighting
from peftlab.weighting.gls import GLSWeighting
from peftlab.weighting.graddrop import GradDropWeighting
from peftlab.weighting.gradnorm import GradNormWeighting
from peftlab.weighting.gradvac import GradVacWeighting
from peftlab.weighting.imtl import IMTLWeighting
from peftlab.weighting.krum import KrumWeighting
from peftlab.weighting.mgda import MGDAWeighting
from peftlab.weighting.moco import MoCoWeighting
from peftlab.weighting.modo import MoDoWeighting
from peftlab.weighting.nash_mtl import NashMTLWeighting
from peftlab.weighting.pcd import PCDWeighting
from peftlab.weighting.pcgrad import PCGradWeighting
from peftlab.weighting.rlw import RLWWeighting
from peftlab.weighting.sdmgrad import SDMGradWeighting
from peftlab.weighting.stch import STCHWeighting
from peftlab.weighting.trimmed_mean import TrimmedMeanWeighting
from peftlab.weighting.uncertainty import UncertaintyWeighting
from peftlab.weighting.upgrad import UPGradWeighting

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
    "GLSWeighting",
    "UPGradWeighting",
    "DualProjWeighting",
    "AlignedMTLWeighting",
    "ConFIGWeighting",
    "FairGradWeighting",
    "GradVacWeighting",
    "GradDropWeighting",
    "DBMTLWeighting",
    "STCHWeighting",
    "PCDWeighting",
    "KrumWeighting",
    "TrimmedMeanWeighting",
    "MoCoWeighting",
    "NashMTLWeighting",
    "ExcessMTLWeighting",
    "CRMOGMWeighting",
    "MoDoWeighting",
    "SDMGradWeighting",
]
