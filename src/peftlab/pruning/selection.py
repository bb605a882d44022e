"""What is prunable: weights chosen by module type and name pattern.

Default: the ``weight`` of every ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` inside the model's
body (the backbone). Biases, norms, embeddings and task heads are excluded unless asked for;
an adapter's own layers (the body's ``adapter_modules()``: LoRA's A and B, ...) are never
prunable (the base layers they wrap are).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError

MODULE_TYPES = {
    "Linear": nn.Linear,
    "Conv1d": nn.Conv1d,
    "Conv2d": nn.Conv2d,
    "Embedding": nn.Embedding,
    "LayerNorm": nn.LayerNorm,
    "Conv1D": None,  # transformers.pytorch_utils.Conv1D (GPT-2's linear layer, weight [in, out]); imported only when named
}


def module_type(name: str) -> type | None:
    """The class ``module_types`` names; None for ``Conv1D`` while transformers is not loaded (then no model holds one)."""
    if name == "Conv1D":
        utils = sys.modules.get("transformers.pytorch_utils")  # (importing transformers takes seconds; a digits run need not)
        return getattr(utils, "Conv1D", None)
    return MODULE_TYPES[name]


@dataclass(frozen=True)
class Target:
    """One prunable tensor: ``module.<attr>`` named ``name`` in the model."""

    name: str
    module: nn.Module
    attr: str

    @property
    def tensor(self) -> torch.Tensor:
        """The parameter itself (zeros are written into it in place)."""
        return getattr(self.module, self.attr)


def select_targets(
    model: nn.Module,
    scope: str | None = "body",
    module_types: Sequence[str] = ("Linear", "Conv1d", "Conv2d"),
    include: str | None = None,
    exclude: str | None = None,
    parameters: Sequence[str] = ("weight",),
    key: str = "strategy.pruning",
    skip: Iterable[nn.Module] = (),
) -> list[Target]:
    """Every ``<module>.<parameter>`` under ``scope`` whose module type is in ``module_types``.

    ``include``/``exclude`` are regular expressions searched in the full parameter name
    (e.g. ``body\\.backbone\\.net\\.1\\.weight``); ``scope`` is a submodule path (``body``,
    ``heads``) or null for the whole model. ``skip``: modules that are never prunable (the
    adapters' own, ``body.adapter_modules()``).
    """
    unknown = [t for t in module_types if t not in MODULE_TYPES]
    if unknown or not module_types:
        raise ConfigError(f"{key}.module_types", f"must be a non-empty list of {', '.join(MODULE_TYPES)}; got {list(module_types)}")
    types = tuple(c for c in map(module_type, module_types) if c is not None)
    root = model
    if scope:
        try:
            root = model.get_submodule(scope)
        except AttributeError:
            raise ConfigError(f"{key}.scope", f"the model has no submodule {scope!r}; use body, heads or null (whole model)") from None
    prefix = f"{scope}." if scope else ""
    inc, exc = _compile(include, f"{key}.include"), _compile(exclude, f"{key}.exclude")
    skipped = {id(m) for m in skip}
    found = []
    for mname, module in root.named_modules():
        if not isinstance(module, types) or id(module) in skipped:
            continue  # an adapter's own layers train; pruning acts on the base weights
        for attr in parameters:
            if not isinstance(getattr(module, attr, None), torch.Tensor):
                continue
            name = f"{prefix}{mname}.{attr}" if mname else f"{prefix}{attr}"
            if inc and not inc.search(name):
                continue
            if exc and exc.search(name):
                continue
            found.append(Target(name, module, attr))
    if not found:
        raise ConfigError(
            f"{key}.include" if include else f"{key}.module_types",
            f"matches no parameter (scope={scope!r}, module_types={list(module_types)}, include={include!r}, exclude={exclude!r}); pick a pattern that matches e.g. {_example(root, prefix)}",
        )
    return found


def _compile(pattern: str | None, key: str):
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(key, f"is not a valid regular expression ({err}); got {pattern!r}") from None


def _example(root: nn.Module, prefix: str) -> str:
    names = [f"{prefix}{n}" for n, _ in root.named_parameters()][:3]
    return ", ".join(names) or "(no parameters)"
