"""Global magnitude pruning: the smallest |w| across all prunable layers together.

Equals torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured, amount=s)
for the same weights and amount (tested).
"""

from __future__ import annotations

from peftlab.pruning.criteria.magnitude import Magnitude


class GlobalMagnitude(Magnitude):
    """|w| ranked across layers (layers end at different sparsities, the total at the target)."""

    name = "global_magnitude"
    scope = "global"
