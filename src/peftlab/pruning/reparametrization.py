"""Make a freshly built model able to load a state dict saved with pruning masks.

Two mask layouts are understood:
- peftlab's own: ``<name>`` holds the (zeroed) weight and ``<name>_mask`` is a buffer
  (:mod:`peftlab.pruning.masks`);
- torch.nn.utils.prune's: ``<name>_orig`` + ``<name>_mask`` with a forward pre-hook.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from peftlab.pruning.masks import attach_mask, get_mask


def restore_pruning_reparam(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Give every masked parameter of ``state_dict`` a matching mask slot in ``model``.

    A checkpoint saved while masks are active has ``<param>_mask`` entries a freshly built model
    lacks, so a strict ``load_state_dict`` would fail. After this call the keys match and loading
    fills in the real masks. Returns the parameter names made maskable.
    """
    modules = dict(model.named_modules())
    restored = []
    for key in state_dict:
        if not key.endswith("_mask"):
            continue
        module_name, _, param = key[: -len("_mask")].rpartition(".")
        module = modules.get(module_name)
        if module is None:
            continue
        if f"{module_name}.{param}_orig" in state_dict:  # torch.nn.utils.prune layout
            if not prune.is_pruned(module) or not hasattr(module, f"{param}_orig"):
                prune.identity(module, param)
                restored.append(f"{module_name}.{param}")
        elif isinstance(getattr(module, param, None), nn.Parameter) and get_mask(module, param) is None:
            attach_mask(module, param)
            restored.append(f"{module_name}.{param}")
    return restored
