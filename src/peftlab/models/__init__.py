"""Models: backbones (MLP, Hugging Face transformers), heads, the MultiTaskModule and its training step:
``per_task_backward`` (per-task gradients combined by the weighting) and ``weighted_loss`` (loss weighting)."""

from peftlab.models.heads import TaskHeads
from peftlab.models.hf import HFBackbone
from peftlab.models.hf_causal_lm import HFCausalLMBackbone
from peftlab.models.mlp import MLPBackbone
from peftlab.models.multitask_module import MultiTaskModule
from peftlab.models.per_task_backward import PerTaskBackwardResult, per_task_backward
from peftlab.models.weighted_loss import weighted_loss

__all__ = ["HFBackbone", "HFCausalLMBackbone", "MLPBackbone", "TaskHeads", "MultiTaskModule", "PerTaskBackwardResult", "per_task_backward", "weighted_loss"]
