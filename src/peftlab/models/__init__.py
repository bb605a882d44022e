"""Models: backbones (MLP, Hugging Face transformers), heads, the MultiTaskModule and its step objects."""

from peftlab.models.heads import TaskHeads
from peftlab.models.hf import HFBackbone
from peftlab.models.mlp import MLPBackbone
from peftlab.models.multitask_module import MultiTaskModule

__all__ = ["HFBackbone", "MLPBackbone", "TaskHeads", "MultiTaskModule"]
