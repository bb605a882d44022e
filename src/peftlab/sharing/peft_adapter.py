"""One adapter shared by every task, inserted into the backbone by Hugging Face peft (LoRA by default)."""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from peftlab.errors import ConfigError
from peftlab.sharing.base import AdapterLayer, SharingPolicy
from peftlab.sharing.lora_targets import default_lora_targets, linear_layer_names, unmatched_targets
from peftlab.sharing.peft_layers import merge_tuner_layers, tuner_layers, tuner_modules
from peftlab.sharing.shared import SharedBody

KEY = "strategy.sharing.adapter"


def as_peft_config(adapter: Any):
    """A peft ``PeftConfig`` from a config object or a mapping with ``peft_type`` (default: LoRA r=8, α=16)."""
    import peft

    if adapter is None:
        return peft.LoraConfig(r=8, lora_alpha=16)
    if isinstance(adapter, peft.PeftConfig):
        return adapter
    if isinstance(adapter, Mapping):
        fields = dict(adapter)
        fields.setdefault("peft_type", "LORA")
        try:
            return peft.get_peft_config(fields)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(KEY, f"not a valid peft config: {err}; give peft_type (LORA, IA3, ...) and that config's fields") from None
    raise ConfigError(KEY, f"must be a peft config (e.g. _target_: peft.LoraConfig) or a mapping with peft_type; got {type(adapter).__name__}")


def _check_targets(config: Any, model: nn.Module) -> None:
    """One line naming the target module(s) that match nothing (peft's rule: the name or its dotted suffix)."""
    targets = getattr(config, "target_modules", None)
    if targets is None or isinstance(targets, str):  # None: peft's defaults for the model type; str: a regex
        return
    missing = unmatched_targets(targets, model)
    if missing:
        raise ConfigError(f"{KEY}.target_modules", f"{missing} match no module of the backbone; its linear layers are {linear_layer_names(model)}")


class PeftBody(SharedBody):
    """A :class:`SharedBody` whose backbone carries peft adapters (what :class:`PeftAdapter` builds)."""

    def adapter_layers(self) -> list[AdapterLayer]:
        """peft's tuner layers in the backbone, each with the base layer it wraps."""
        return tuner_layers(self)

    def adapter_modules(self) -> list[nn.Module]:
        """The adapters' own modules (``lora_A``, ``lora_B``, ...)."""
        return tuner_modules(self)

    def merge_adapters(self) -> int:
        """Merge the adapter into the base weights (peft's ``merge``) and drop the tuner layers."""
        return merge_tuner_layers(self)


class PeftAdapter(SharingPolicy):
    """One peft adapter (LoRA, DoRA, IA3, … any ``PeftConfig``) shared by every task (``strategy/sharing=peft``).

    The backbone's weights are frozen; the adapter and the task heads train. With
    ``target_modules: null`` a LoRA adapter goes into the architecture's attention projections
    (query/value for BERT, c_attn for GPT-2, q_lin/v_lin for DistilBERT: see
    :mod:`~peftlab.sharing.lora_targets`); other adapter types take peft's defaults. HF backbones keep the transformer in ``.model``: that is what the
    adapter goes into, so peft sees the model type.

    Args:
        adapter: a peft config (``_target_: peft.LoraConfig`` …) or a mapping with ``peft_type``.
    """

    name = "peft"

    def __init__(self, adapter: Any = None):
        self.adapter = as_peft_config(adapter)

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> PeftBody:
        """One backbone with the adapter inserted; only the adapter's parameters train."""
        import peft

        backbone = make_backbone()
        target = getattr(backbone, "model", backbone)
        adapter = self.adapter
        is_lora = str(getattr(adapter, "peft_type", "")).endswith("LORA")
        if getattr(adapter, "target_modules", "") is None and (is_lora or getattr(target, "config", None) is None):
            # peft infers targets from a table of model types (a plain network, the built-in MLP,
            # has none): every linear layer of a plain network; LoRA: the attention projections
            targets = default_lora_targets(target)
            if targets is not None:
                adapter = copy.copy(adapter)
                adapter.target_modules = targets
        _check_targets(adapter, target)
        try:
            peft.inject_adapter_in_model(adapter, target)
        except ValueError as err:
            first = str(err).splitlines()[0]
            if "target_modules" in first or "not found" in first:
                raise ConfigError(f"{KEY}.target_modules", f"{first} (set {KEY}.target_modules to names of this backbone's linear layers: {linear_layer_names(target)})") from None
            raise ConfigError(KEY, first) from None
        # right after insertion peft has marked exactly the adapter's parameters trainable: record them
        return PeftBody(backbone, task_names, [p for p in backbone.parameters() if p.requires_grad])
