"""Checkpoints of a pretrained backbone hold only what trains, plus a pointer to the base model.

With a frozen pretrained backbone (``frozen``, ``bitfit``, ``peft``) nearly all weights are the
ones ``model.name_or_path`` already holds: writing them into every checkpoint would cost
hundreds of MB each. On save they are dropped and ``checkpoint["peftlab_base_model"]`` records
where they come from; on load (eval, resume, export) the freshly built model already holds them,
so they are put back into the state dict after checking that exactly those keys are missing.
Buffers (pruning masks among them) are always kept, and a pruned frozen weight comes back as
base weight × mask. Backbones that were not loaded from
pretrained weights (the MLP) keep full checkpoints.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from peftlab.errors import ConfigError

BASE_MODEL_KEY = "peftlab_base_model"


def frozen_state_keys(module: nn.Module) -> list[str]:
    """State-dict keys of the body parameters its sharing policy keeps frozen."""
    return [f"body.{n}" for n in module.body.frozen_parameter_names()]


def drop_frozen_weights(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Remove frozen pretrained weights from ``checkpoint["state_dict"]``; record the base model instead."""
    pointer = module.body.base_model()
    frozen = frozen_state_keys(module)
    if pointer is None or not frozen:
        return
    state = checkpoint["state_dict"]
    for key in frozen:
        state.pop(key, None)
    checkpoint[BASE_MODEL_KEY] = {**pointer, "frozen_keys": len(frozen)}


def restore_frozen_weights(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Fill the frozen weights a checkpoint left out from the (just loaded) base model; verify nothing else is missing."""
    info = checkpoint.get(BASE_MODEL_KEY)
    if info is None:
        return
    state = checkpoint["state_dict"]
    own = module.state_dict()
    frozen = set(frozen_state_keys(module))
    missing = set(own) - set(state)
    if missing != frozen:
        unexpected = sorted(missing - frozen) or sorted(frozen - missing)
        raise ConfigError("ckpt_path", f"the checkpoint's weights do not fit this model's frozen/trainable split (e.g. {unexpected[:3]}); was it trained with another strategy/sharing?")
    for key in frozen:
        # a pruned frozen weight holds its zeros in place (peftlab.pruning.masks): base × mask is
        # exactly what was trained with, since a frozen weight never changes otherwise
        mask = state.get(key + "_mask")
        state[key] = own[key] * mask if mask is not None else own[key]
