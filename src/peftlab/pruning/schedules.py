"""Sparsity schedules in optimizer steps: one_shot, iterative, linear and cubic (Zhu & Gupta 2017).

A schedule maps an optimizer step to the target sparsity — the fraction of prunable weights (or
units, for structured criteria) that are zero after that step. Targets never compound: a target
of 0.5 means half of all prunable weights, however many updates it takes to get there.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.errors import ConfigError

KINDS = ("one_shot", "iterative", "linear", "cubic")


@dataclass
class Schedule:
    """Target sparsity over optimizer steps.

    Args:
        kind: ``one_shot`` (final_sparsity at start_step), ``iterative`` (``amount`` more every
            ``every_n_steps``, capped at final_sparsity), ``linear`` or ``cubic`` ramps from
            initial_sparsity at start_step to final_sparsity at end_step.
        start_step / end_step: first and last optimizer step of the ramp (end_step > start_step).
        every_n_steps: masks are updated every n steps between start_step and end_step.
        initial_sparsity / final_sparsity: fractions in [0, 1).
        amount: iterative only: sparsity added per update (fraction of all prunable weights).
        key: config prefix named in error messages.
    """

    kind: str = "cubic"
    start_step: int = 0
    end_step: int = 100
    every_n_steps: int = 10
    initial_sparsity: float = 0.0
    final_sparsity: float = 0.5
    amount: float | None = None
    key: str = "strategy.pruning"

    def __post_init__(self) -> None:
        k = self.key
        if self.kind not in KINDS:
            raise ConfigError(f"{k}.schedule", f"must be one of {', '.join(KINDS)}; got {self.kind!r}")
        for name in ("initial_sparsity", "final_sparsity"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{k}.{name}", f"must be in [0, 1); got {value}")
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(f"{k}.initial_sparsity", f"must be <= final_sparsity ({self.final_sparsity}); got {self.initial_sparsity}")
        if not isinstance(self.start_step, int) or self.start_step < 0:
            raise ConfigError(f"{k}.start_step", f"must be an integer >= 0; got {self.start_step}")
        if self.kind != "one_shot" and (not isinstance(self.end_step, int) or self.end_step <= self.start_step):
            raise ConfigError(f"{k}.end_step", f"must be an integer > start_step ({self.start_step}); got {self.end_step}")
        if not isinstance(self.every_n_steps, int) or self.every_n_steps < 1:
            raise ConfigError(f"{k}.every_n_steps", f"must be an integer >= 1; got {self.every_n_steps}")
        if self.kind == "iterative" and (self.amount is None or not 0.0 < self.amount < 1.0):
            raise ConfigError(f"{k}.amount", f"schedule=iterative needs amount in (0, 1) (sparsity added per update); got {self.amount}")
        if self.kind == "one_shot":
            self.end_step = self.start_step

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed after optimizer step ``step`` (1-based count of steps done)."""
        if step < self.start_step or step > self.end_step:
            return False
        return step == self.end_step or (step - self.start_step) % self.every_n_steps == 0

    def sparsity_at(self, step: int) -> float:
        """The target sparsity once ``step`` optimizer steps are done (0 before start_step)."""
        if step < self.start_step:
            return 0.0
        if step >= self.end_step:
            return self.final_sparsity
        si, sf = self.initial_sparsity, self.final_sparsity
        if self.kind == "iterative":
            updates = (step - self.start_step) // self.every_n_steps + 1
            return min(sf, si + updates * self.amount)
        frac = (step - self.start_step) / (self.end_step - self.start_step)
        if self.kind == "linear":
            return si + (sf - si) * frac
        return sf + (si - sf) * (1.0 - frac) ** 3  # cubic

    def with_steps_per_epoch(self, steps_per_epoch: int, start_epoch: float | None, end_epoch: float | None) -> "Schedule":
        """Convert epoch bounds (a convenience) into optimizer steps."""
        if start_epoch is not None:
            self.start_step = int(round(start_epoch * steps_per_epoch))
        if end_epoch is not None:
            self.end_step = int(round(end_epoch * steps_per_epoch))
        self.__post_init__()
        return self
