"""Loss weighting under Lightning's automatic optimisation: one backward of the combined loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from peftlab.batch import call_body, inputs_size
from peftlab.distributed import world_size

if TYPE_CHECKING:
    from peftlab.models.multitask_module import MultiTaskModule


class AutomaticStep:
    """Per-task losses combined by the weighting method; Lightning runs backward, accumulation and the optimizer.

    A step whose loss is NaN/Inf on any rank is skipped on every rank: it returns None (Lightning
    skips the backward), or under DDP a zero loss (Lightning needs one there); either way the
    module's optimizer hook then drops the update if no finite micro-batch is left in it.
    """

    automatic_optimization = True

    def __call__(self, module: "MultiTaskModule", batch: dict, batch_idx: int) -> torch.Tensor | None:
        """The loss Lightning differentiates (None: skip this step)."""
        features = call_body(module.body, batch["inputs"], batch["task_mask"])
        losses = module.task_losses(module.heads(features), batch)
        if module.skip_bad_losses(losses):
            return module.zero_loss() if world_size() > 1 else None
        module.good_micro_batches += 1
        weighting = module.weighting
        if weighting.uses_shared:
            loss = weighting.combine(losses, shared=module.shared_for_weighting(features))
        else:
            loss = weighting(losses)
        module.log_losses(loss, losses, inputs_size(batch["inputs"]))
        return loss
