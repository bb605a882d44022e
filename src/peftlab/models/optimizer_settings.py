"""Checks of the optimizer's settings, where the module receives its optimizer factory.

torch's optimizers answer ``lr=-1`` with a ValueError traceback, ``lr=nan`` by training on NaN
and ``lr=abc`` with a TypeError from a comparison; a ConfigError naming the key is one line.
"""

from __future__ import annotations

from typing import Any

from peftlab.validators import check_positive

# keyword of the optimizer factory -> the config key users set it with (configs/model/*.yaml)
CHECKED = {"lr": "model.optimizer.lr", "weight_decay": "model.optimizer.weight_decay"}


def check_optimizer_settings(factory: Any) -> None:
    """ConfigError naming ``model.optimizer.<key>`` when the factory's ``lr`` or ``weight_decay`` is not
    a finite number >= 0 (``factory``: a Hydra ``_partial_`` optimizer, a ``functools.partial``; other
    callables carry no keywords to check)."""
    keywords = getattr(factory, "keywords", None) or {}
    for name, key in CHECKED.items():
        if name in keywords:
            check_positive(key, keywords[name], allow_zero=True)
