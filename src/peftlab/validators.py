"""Checks of config values shared by every component: each raises a ConfigError naming the key and what is allowed."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from peftlab.errors import ConfigError


def check_positive(key: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float, or a ConfigError naming ``key`` when it is not > 0 (>= 0)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(key, f"must be a number {'>=' if allow_zero else '>'} 0; got {value!r}")
    return float(value)


def check_choice(key: str, value, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ConfigError listing them."""
    if value not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_int(key: str, value, minimum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(key, f"must be an integer{bound}; got {value!r}")
    return value


def check_fraction(key: str, value, allow_zero: bool = True, allow_one: bool = False) -> float:
    """``value`` as a float in [0, 1) (bounds per ``allow_zero`` / ``allow_one``), else a ConfigError naming ``key``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0) and (value <= 1 if allow_one else value < 1)
    if not ok:
        interval = ("[" if allow_zero else "(") + "0, 1" + ("]" if allow_one else ")")
        raise ConfigError(key, f"must be a number in {interval}; got {value!r}")
    return float(value)
