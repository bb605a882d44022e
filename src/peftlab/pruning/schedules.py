"""Sparsity schedules in optimizer steps: one_shot, iterative, linear and cubic (Zhu & Gupta 2017).

A schedule maps an optimizer step to the target sparsity — the fraction of prunable weights (or
units, for structured criteria) that are zero after that step. Targets never compound: a target
of 0.5 means half of all prunable weights, however many updates it takes to get there.

Step bounds (``start_step``, ``end_step``, ``every_n_steps``, and the callback's ``rewind_step``)
are either an **int**, an absolute optimizer step, or a **float in [0, 1]**, a fraction of the
run's optimizer steps (``trainer.estimated_stepping_batches``), so one recipe fits every epoch
budget, batch size, dataset and gradient accumulation. Fractions become steps in
:meth:`Schedule.resolve` when training starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from peftlab.errors import ConfigError
from peftlab.validators import check_choice, check_fraction

KINDS = ("one_shot", "iterative", "linear", "cubic")


def check_step_or_fraction(key: str, value, minimum: int = 0) -> int | float:
    """``value`` if it is an int >= ``minimum`` (a step) or a float in [0, 1] (a fraction of the run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be an optimizer step (int >= {minimum}) or a fraction of the run (float in [0, 1]); got {value!r}")
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"a float is a fraction of the run's optimizer steps, in [0, 1]; got {value} (write {int(value)} for step {int(value)})")
    if isinstance(value, int) and value < minimum:
        raise ConfigError(key, f"must be an optimizer step >= {minimum} or a fraction of the run in [0, 1]; got {value}")
    return value


def to_steps(value: int | float, total_steps: float, key: str) -> int:
    """An absolute step stays; a fraction becomes ``round(fraction × total_steps)``."""
    if isinstance(value, int):
        return value
    if not math.isfinite(total_steps):
        raise ConfigError(key, f"is a fraction of the run ({value}), but the run has no step limit (set trainer.max_epochs or trainer.max_steps) — or give an absolute step (int)")
    return int(round(value * total_steps))


@dataclass
class Schedule:
    """Target sparsity over optimizer steps.

    Args:
        kind: ``one_shot`` (final_sparsity at start_step), ``iterative`` (``amount`` more every
            ``every_n_steps``; if that has not reached final_sparsity by end_step, the update at
            end_step jumps to it — a warning says so), ``linear`` or ``cubic`` ramps from
            initial_sparsity at start_step to final_sparsity at end_step.
        start_step / end_step: first and last optimizer step of the ramp (end_step > start_step);
            an int is a step, a float in [0, 1] a fraction of the run.
        every_n_steps: masks are updated every n steps between start_step and end_step (int >= 1,
            or a fraction of the run: at least 1 step).
        initial_sparsity / final_sparsity: fractions in [0, 1).
        amount: iterative only: sparsity added per update (fraction of all prunable weights).
        key: config prefix named in error messages.
    """

    kind: str = "cubic"
    start_step: int | float = 0
    end_step: int | float = 100
    every_n_steps: int | float = 10
    initial_sparsity: float = 0.0
    final_sparsity: float = 0.5
    amount: float | None = None
    key: str = "strategy.pruning"
    bounds: dict = field(default_factory=dict, repr=False)  # the configured (unresolved) bounds

    def __post_init__(self) -> None:
        k = self.key
        check_choice(f"{k}.schedule", self.kind, KINDS)
        for name in ("initial_sparsity", "final_sparsity"):
            check_fraction(f"{k}.{name}", getattr(self, name))
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(f"{k}.initial_sparsity", f"must be <= final_sparsity ({self.final_sparsity}); got {self.initial_sparsity}")
        check_step_or_fraction(f"{k}.start_step", self.start_step)
        if self.kind != "one_shot":
            check_step_or_fraction(f"{k}.end_step", self.end_step, minimum=1)
            if type(self.start_step) is type(self.end_step) and self.end_step <= self.start_step:
                raise ConfigError(f"{k}.end_step", f"must be > start_step ({self.start_step}); got {self.end_step}")
        check_step_or_fraction(f"{k}.every_n_steps", self.every_n_steps, minimum=1)
        if isinstance(self.every_n_steps, float) and self.every_n_steps == 0.0:
            raise ConfigError(f"{k}.every_n_steps", "must be > 0")
        if self.kind == "iterative":
            if self.amount is None:
                raise ConfigError(f"{k}.amount", "schedule=iterative needs amount in (0, 1) (sparsity added per update); got None")
            check_fraction(f"{k}.amount", self.amount, allow_zero=False)
        if self.kind == "one_shot":
            self.end_step = self.start_step
        self.bounds = {"start_step": self.start_step, "end_step": self.end_step, "every_n_steps": self.every_n_steps}

    def resolve(self, total_steps: float) -> "Schedule":
        """Turn fractions into steps of a run of ``total_steps`` optimizer steps and check the fit."""
        k, b = self.key, self.bounds
        start = to_steps(b["start_step"], total_steps, f"{k}.start_step")
        end = to_steps(b["end_step"], total_steps, f"{k}.end_step") if self.kind != "one_shot" else start
        every = max(1, to_steps(b["every_n_steps"], total_steps, f"{k}.every_n_steps"))
        if self.kind != "one_shot" and end <= start and isinstance(b["start_step"], float) and isinstance(b["end_step"], float):
            end = start + 1  # a very short run: two fractions (end > start) rounded onto the same step
        if self.kind != "one_shot" and end <= start:
            raise ConfigError(f"{k}.end_step", f"must be > start_step ({start}); got {end}")
        if math.isfinite(total_steps) and end > total_steps:
            raise ConfigError(
                f"{k}.end_step",
                f"must be <= the run's {int(total_steps)} optimizer steps (trainer.max_epochs × batches per epoch / accumulation); got {end} (a float in [0, 1] is a fraction of the run)",
            )
        self.start_step, self.end_step, self.every_n_steps = start, end, every
        return self

    def iterative_shortfall(self) -> float:
        """Iterative only: how far below final_sparsity the last regular update stays (0: none)."""
        if self.kind != "iterative" or self.end_step <= self.start_step:
            return 0.0
        updates = (self.end_step - 1 - self.start_step) // self.every_n_steps + 1
        return max(0.0, self.final_sparsity - (self.initial_sparsity + updates * self.amount))

    @property
    def resolved(self) -> bool:
        """Whether every step bound is a step of this run (fractions turned into steps by :meth:`resolve`)."""
        return all(isinstance(v, int) for v in (self.start_step, self.end_step, self.every_n_steps))

    def _check_resolved(self) -> None:
        if not self.resolved:
            raise RuntimeError("the schedule has fractions of the run: call resolve(total_steps) first")

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed after optimizer step ``step`` (1-based count of steps done)."""
        self._check_resolved()
        if step < self.start_step or step > self.end_step:
            return False
        return step == self.end_step or (step - self.start_step) % self.every_n_steps == 0

    def sparsity_at(self, step: int) -> float:
        """The target sparsity once ``step`` optimizer steps are done (0 before start_step)."""
        self._check_resolved()
        if step < self.start_step:
            return 0.0
        if step >= self.end_step:
            return self.final_sparsity  # iterative: a jump when `amount` has not got there yet
        si, sf = self.initial_sparsity, self.final_sparsity
        if self.kind == "iterative":
            updates = (step - self.start_step) // self.every_n_steps + 1
            return min(sf, si + updates * self.amount)
        frac = (step - self.start_step) / (self.end_step - self.start_step)
        if self.kind == "linear":
            return si + (sf - si) * frac
        return sf + (si - sf) * (1.0 - frac) ** 3  # cubic
