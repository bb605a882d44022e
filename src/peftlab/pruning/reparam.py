"""Re-create torch.nn.utils.prune's mask re-parametrisation before loading a masked state dict."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune


def restore_pruning_reparam(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Apply an identity mask to every ``module.<name>`` whose ``<name>_orig``/``<name>_mask`` is in ``state_dict``.

    A checkpoint saved while masks are active stores ``weight_orig`` and ``weight_mask`` instead
    of ``weight``; a freshly built model has plain ``weight``, so loading would fail. After this
    call the keys match and ``load_state_dict`` fills in the real masks. Returns the names made
    maskable.
    """
    modules = dict(model.named_modules())
    restored = []
    for key in state_dict:
        if not key.endswith("_mask"):
            continue
        module_name, _, param = key[: -len("_mask")].rpartition(".")
        module = modules.get(module_name)
        if module is None or f"{module_name}.{param}_orig" not in state_dict:
            continue
        if not prune.is_pruned(module) or not hasattr(module, f"{param}_mask"):
            prune.identity(module, param)
            restored.append(f"{module_name}.{param}")
    return restored
