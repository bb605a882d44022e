"""The non-finite guard: skip steps whose loss or gradient is NaN/Inf, stop after too many in a row."""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import torch

from peftlab.distributed import all_reduce_sum, world_size

log = logging.getLogger(__name__)


def zero_loss(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """0 through every parameter that requires grad: what a skipped step backpropagates under DDP, where
    Lightning refuses a ``None`` loss (every rank runs the same backward and all-reduce); it adds to no gradient."""
    return torch.stack([(p * 0).sum() for p in parameters if p.requires_grad]).sum()


class NonFiniteError(RuntimeError):
    """Raised when too many consecutive training steps were non-finite."""


class NonFiniteGuard:
    """Counts skipped steps and raises :class:`NonFiniteError` after ``max_bad_steps`` in a row.

    Decisions are identical on every DDP rank: loss flags are summed across ranks before they
    are read, and gradient checks run on gradients that are already averaged across ranks.
    """

    def __init__(self, max_bad_steps: int, task_names: Sequence[str]):
        self.max_bad_steps = max_bad_steps
        self.task_names = list(task_names)
        self.skipped = 0
        self.consecutive = 0

    def bad_loss_tasks(self, losses: dict[str, torch.Tensor]) -> list[str]:
        """Tasks whose loss is NaN/Inf on any rank (one small collective under DDP)."""
        if not losses:
            return []
        values = torch.stack([loss.detach().float() for loss in losses.values()])
        if world_size() == 1:
            if bool(torch.isfinite(values).all()):  # the common case: one fused check, one sync
                return []
            return [n for n, ok in zip(losses, torch.isfinite(values).tolist()) if not ok]
        flags = torch.zeros(len(self.task_names), device=values.device)
        index = torch.tensor([self.task_names.index(n) for n in losses], device=values.device)
        flags[index] = (~torch.isfinite(values)).float()
        all_reduce_sum(flags)  # a task bad on any rank is bad everywhere: all ranks skip together
        return [n for n, f in zip(self.task_names, flags.tolist()) if f > 0]

    def skip_bad_losses(self, losses: dict[str, torch.Tensor]) -> bool:
        """Record (and return) whether any task's loss is NaN/Inf on any rank, so that every rank skips the step."""
        bad = self.bad_loss_tasks(losses)
        if bad:
            self.record_bad("loss", bad)
        return bool(bad)

    def skip_bad_total(self, total: torch.Tensor) -> bool:
        """Record (and return) whether the weighted total of the task losses is NaN/Inf on any rank.

        Every task's loss can be finite while the weighting's combination of them is not (uncertainty
        weighting with ``init_log_var=inf``: exp(-inf) * L + inf); such a step is skipped and counted
        like a bad task loss."""
        flag = (~torch.isfinite(total.detach().float())).float().reshape(1)
        if world_size() > 1:
            all_reduce_sum(flag)  # bad on any rank: every rank skips
        bad = bool(flag.item() > 0)
        if bad:
            self.record_bad("weighted total loss", [])
        return bad

    def record_bad(self, what: str, tasks: Sequence[str], key: str = "strategy.clipping.max_bad_steps") -> None:
        """Count one skipped step; raise when the limit of consecutive ones is reached."""
        self.skipped += 1
        self.consecutive += 1
        names = ", ".join(tasks) if tasks else "all tasks combined"
        log.warning("skipped a training step: non-finite %s (task: %s); %d in a row", what, names, self.consecutive)
        if self.consecutive >= self.max_bad_steps:
            raise NonFiniteError(
                f"training stopped after {self.consecutive} consecutive steps with a non-finite {what} (task: {names}); lower the learning rate, check that task's data, or raise {key}"
            )

    def record_good(self) -> None:
        """A step went through: reset the consecutive count."""
        self.consecutive = 0
