"""The two ways one training step runs: automatic (one backward of the weighted loss) or per-task gradients."""

from peftlab.models.steps.automatic import AutomaticStep
from peftlab.models.steps.per_task import PerTaskGradientStep

__all__ = ["AutomaticStep", "PerTaskGradientStep"]
