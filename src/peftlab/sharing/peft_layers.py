"""What peftlab knows about Hugging Face peft's layers: where its adapters are, what they wrap, how they merge.

peft wraps each adapted layer in a tuner layer (``LoraLayer`` and its kin, all
``BaseTunerLayer``) that keeps the original layer as ``base_layer`` and its own modules
(``lora_A``, ``lora_B``, ...) beside it. The bodies with peft adapters
(:class:`~peftlab.sharing.peft_adapter.PeftBody`, :class:`~peftlab.sharing.task_lora.TaskLoraBody`)
answer :class:`~peftlab.sharing.base.PolicyBody`'s adapter questions with these functions, so
no other part of peftlab reads peft's names.
"""

from __future__ import annotations

import sys

from torch import nn

from peftlab.sharing.base import AdapterLayer


def tuner_layers(root: nn.Module) -> list[AdapterLayer]:
    """Every peft tuner layer under ``root`` (outermost only) with the base layer it wraps."""
    if "peft" not in sys.modules:  # peft never imported: no peft layer can exist
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    found: list[AdapterLayer] = []
    inside: set[int] = set()
    for name, module in root.named_modules():
        if id(module) in inside or not isinstance(module, BaseTunerLayer):
            continue
        inside.update(id(m) for m in module.modules())
        base = module.get_base_layer()
        base_attr = next(n for n, m in module.named_modules() if m is base)
        found.append(AdapterLayer(name, module, base, base_attr))
    return found


def tuner_modules(root: nn.Module) -> list[nn.Module]:
    """The peft adapters' own modules under ``root`` (``lora_A.<name>``, ...): a tuner layer's
    modules other than its base layer and the base layer's own."""
    own: list[nn.Module] = []
    for adapter in tuner_layers(root):
        base = {id(m) for m in adapter.base.modules()}
        own += [m for m in adapter.layer.modules() if m is not adapter.layer and id(m) not in base]
    return own


def merge_tuner_layers(root: nn.Module) -> int:
    """Merge every peft tuner layer under ``root`` into its base weight and put the base layer in its place."""
    layers = tuner_layers(root)
    modules = dict(root.named_modules())
    for adapter in layers:
        adapter.layer.merge()  # peft's default: the active adapters
        parent_name, _, child = adapter.name.rpartition(".")
        setattr(modules[parent_name] if parent_name else root, child, adapter.base)
    return len(layers)
