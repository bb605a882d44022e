"""Models: backbones, heads and the MultiTaskModule."""

from peftlab.models.heads import TaskHeads
from peftlab.models.mlp import MLPBackbone
from peftlab.models.multitask_module import MultiTaskModule

__all__ = ["MLPBackbone", "TaskHeads", "MultiTaskModule"]
