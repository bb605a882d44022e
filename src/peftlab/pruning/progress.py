"""Where a pruning schedule stands: the state a pruning callback checkpoints and resumes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from peftlab.pruning.schedules import Schedule


@dataclass
class ScheduleProgress:
    """The schedule's position, the sparsity reached and its history, and the rewind snapshot.

    ``restored_schedule``: the checkpoint's resolved start/end steps (until compared with this
    run's); ``resume_floor``: after a resume under another budget, sparsity never goes below this.
    """

    last_update_step: int = -1
    current_sparsity: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)
    final_applied: bool = False  # masks computed for final_sparsity
    resume_floor: float = -1.0
    restored_schedule: dict[str, int] | None = None
    rewind_weights: list[torch.Tensor] | None = None

    def due_target(self, schedule: Schedule, step: int) -> float | None:
        """The sparsity to update the masks to after optimizer step ``step``, or None (no update now)."""
        # resumed under a shorter budget, past the new end_step: go to final sparsity now
        overdue = step > schedule.end_step and not self.final_applied
        if step <= self.last_update_step or not (schedule.is_update_step(step) or overdue):
            return None
        target = schedule.sparsity_at(step)
        if target <= self.resume_floor and target < schedule.final_sparsity:
            return None  # resumed under a longer budget: never un-prune (see follow_new_budget)
        return target

    def follow_new_budget(self, schedule: Schedule) -> tuple[dict[str, int], dict[str, int]] | None:
        """After a resume: ``(checkpoint's, this run's)`` start/end steps when the run's budget moved them, else None.

        The schedule continues from where training stands under the new budget; a target below the
        sparsity already reached (a longer run moves end_step later) keeps the masks as they are
        instead of reviving pruned weights, until the new schedule passes that sparsity.
        """
        restored, self.restored_schedule = self.restored_schedule, None
        now = {"start_step": schedule.start_step, "end_step": schedule.end_step}
        if restored is None or restored == now:
            return None
        self.resume_floor = self.current_sparsity
        return restored, now

    def state_dict(self, schedule: Schedule, criterion: Any) -> dict[str, Any]:
        """Schedule position, history, criterion state (movement scores) and the rewind snapshot."""
        return {
            "last_update_step": self.last_update_step,
            "current_sparsity": self.current_sparsity,
            "history": list(self.history),
            "final_applied": self.final_applied,
            "resume_floor": self.resume_floor,
            "schedule": {"start_step": schedule.start_step, "end_step": schedule.end_step},
            "criterion": criterion.state_dict(),
            "rewind_weights": self.rewind_weights,
            # the global RNG (dropout) is checkpointed by peftlab.callbacks.rng_state.RngStateInCheckpoint,
            # which train.py always adds; the random criterion needs none (seeded by seed and step)
        }

    def load_state_dict(self, state: dict[str, Any], criterion: Any) -> None:
        """Restore :meth:`state_dict` (masks themselves come back with the model's buffers)."""
        self.last_update_step = state["last_update_step"]
        self.current_sparsity = state["current_sparsity"]
        self.history = [tuple(h) for h in state["history"]]
        criterion.load_state_dict(state["criterion"])
        self.rewind_weights = state.get("rewind_weights")
        self.restored_schedule = state.get("schedule")
        self.resume_floor = state.get("resume_floor", -1.0)
        self.final_applied = state.get("final_applied", self.last_update_step >= state["schedule"]["end_step"])
