"""Checkpoints of a pretrained backbone hold only what trains, plus a pointer to the base model.

With a frozen pretrained backbone (``frozen``, ``bitfit``, ``peft``) nearly all weights are the
ones ``model.name_or_path`` already holds: writing them into every checkpoint would cost
hundreds of MB each. On save they are dropped and ``checkpoint["peftlab_base_model"]`` records
where they come from; on load (eval, resume, export) the freshly built model already holds them,
so they are put back into the state dict after checking that exactly those keys are missing.
The pointer carries a fingerprint of the base (:mod:`peftlab.checkpoints.base_fingerprint`): a
folder that now holds other weights or another config is refused on load instead of being used.
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
    checkpoint[BASE_MODEL_KEY] = {**pointer, "frozen_keys": len(frozen), "fingerprint": base_fingerprint(module)}


def base_fingerprint(module: nn.Module) -> dict[str, str] | None:
    """The fingerprint of the body's pretrained backbone (None for a backbone without one)."""
    fingerprint = getattr(getattr(module.body, "backbone", None), "base_fingerprint", None)
    return fingerprint() if callable(fingerprint) else None


def check_same_base(module: nn.Module, info: dict[str, Any]) -> None:
    """ConfigError naming ``model.name_or_path`` when the base the module was just built from is not
    the one the checkpoint was trained on (checkpoints written before fingerprints: not checked)."""
    stored = info.get("fingerprint")
    current = base_fingerprint(module) if stored else None
    if stored and current != stored:
        parts = [name for k, name in (("config_sha256", "config.json"), ("weights_sha256", "weights")) if (current or {}).get(k) != stored.get(k)]
        what = f"{' and '.join(parts)} {'differs' if parts == ['config.json'] else 'differ'}"
        folder = getattr(getattr(module.body, "backbone", None), "weights_dir", None) or info.get("name_or_path")
        raise ConfigError(
            "model.name_or_path",
            f"{folder}: its {what} from the frozen base this checkpoint was trained on (it stores only the adapters); restore that model into the folder or point model.name_or_path at it",
        )


def restore_frozen_weights(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Fill the frozen weights a checkpoint left out from the (just loaded) base model; verify nothing else is missing."""
    info = checkpoint.get(BASE_MODEL_KEY)
    if info is None:
        return
    check_same_base(module, info)
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
