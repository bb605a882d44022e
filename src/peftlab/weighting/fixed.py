"""Fixed task weights from the config."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any, Sequence

import torch

from peftlab.errors import ConfigError
from peftlab.weighting.base import Weighting

KEY = "strategy.weighting.alpha"


class FixedWeighting(Weighting):
    """L = Σ_i α_i L_i with α given in the config.

    Args:
        alpha: a list in task order (``[0.6, 0.3, 0.1]``) or a mapping by task name
            (``{digit: 0.6, parity: 0.3, high: 0.1}``); non-negative, not all zero.
            ``None`` means 1 for every task.
        normalize: rescale α so that Σα = T (the number of tasks), which keeps the loss on the
            same scale as equal weighting.
    """

    def __init__(self, alpha: Sequence[float] | Mapping[str, float] | None = None, normalize: bool = False):
        super().__init__()
        self.raw_alpha: Any = alpha
        self.normalize = bool(normalize)
        self.register_buffer("weights", torch.empty(0), persistent=False)

    def setup(self, task_names: Sequence[str]) -> None:
        """Check α against the tasks and store it in task order."""
        super().setup(task_names)
        values = self._alpha_in_task_order(self.raw_alpha)
        if self.normalize:
            total = sum(values)
            values = [v * len(values) / total for v in values]
        self.values = values  # reported exactly as configured (no float32 rounding)
        self.weights = torch.tensor(values, dtype=torch.float32)
        self._index = {name: i for i, name in enumerate(self.task_names)}

    def _alpha_in_task_order(self, alpha: Any) -> list[float]:
        names = self.task_names
        expected = f"{len(names)} non-negative numbers (one per task: {', '.join(names)}) or a mapping by task name"
        if alpha is None:
            return [1.0] * len(names)
        if isinstance(alpha, Mapping):
            unknown = [k for k in alpha if k not in names]
            if unknown:
                raise ConfigError(KEY, f"unknown task name(s) {unknown}; allowed: {', '.join(names)}")
            missing = [n for n in names if n not in alpha]
            if missing:
                raise ConfigError(KEY, f"no weight for task(s) {missing}; expected {expected}")
            values = [alpha[n] for n in names]
        elif isinstance(alpha, Sequence) and not isinstance(alpha, (str, bytes)):
            values = list(alpha)
            if len(values) != len(names):
                raise ConfigError(KEY, f"got {len(values)} value(s) {values}; expected {expected}")
        else:
            raise ConfigError(KEY, f"got {alpha!r}; expected {expected}")
        if any(isinstance(v, bool) or not isinstance(v, Real) for v in values):
            raise ConfigError(KEY, f"got non-numeric value(s) in {values}; expected {expected}")
        if any(v < 0 for v in values) or not all(torch.isfinite(torch.tensor(float(v))) for v in values):
            raise ConfigError(KEY, f"got {values}; weights must be finite and >= 0")
        if sum(values) == 0:
            raise ConfigError(KEY, "all weights are zero; at least one task must count")
        return [float(v) for v in values]

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ α_i L_i over the tasks present."""
        return sum(self.weights[self._index[name]] * loss for name, loss in losses.items())

    def alpha(self) -> dict[str, float]:
        """The configured (possibly normalised) α."""
        return dict(zip(self.task_names, self.values))
