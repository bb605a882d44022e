"""Which modules a LoRA adapter goes into when ``target_modules`` is null, for any architecture.

peft picks targets from a table keyed by the model type (``query``/``value`` for BERT, ``c_attn``
for GPT-2) and stops with "Please specify `target_modules`" for every model type it lacks
(``distilbert`` in peft 0.21). The rule here: peft's own choice where its table has the model
type; else the attention projections found among the model's linear layers, by name (the
query/value pair of the usual spellings, or a fused qkv projection); else every linear layer
(what peft's ``all-linear`` shorthand means, listed by name so that it also works on a model
that is not a ``PreTrainedModel``); a plain network (the built-in MLP) gets every linear layer.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

# Attention projections by name, in order of preference: a query/value pair (the LoRA paper's
# choice) in the spellings of common architectures, or one fused query-key-value projection.
ATTENTION_NAMES: tuple[tuple[str, ...], ...] = (
    ("query", "value"),  # BERT, RoBERTa, ELECTRA, MiniLM
    ("q_proj", "v_proj"),  # Llama, Mistral, OPT, BART, Whisper
    ("q_lin", "v_lin"),  # DistilBERT
    ("q", "v"),  # T5
    ("query_proj", "value_proj"),  # DeBERTa-v2
    ("c_attn",),  # GPT-2 (a fused Conv1D)
    ("query_key_value",),  # Falcon, BLOOM, GPT-NeoX
    ("qkv_proj",),  # Phi-3
    ("Wqkv",),  # MPT, ModernBERT
    ("qkv",),  # ViT-style timm models
)


def is_linear(module: nn.Module) -> bool:
    """nn.Linear or Hugging Face's ``Conv1D`` (GPT-2's linear layer with transposed weights)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct last names of the model's linear layers (what ``target_modules`` entries match)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and is_linear(module)})


def peft_knows(model: nn.Module) -> bool:
    """Whether peft has default LoRA targets for the model's type."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING


def default_lora_targets(model: nn.Module) -> list[str] | None:
    """LoRA targets for ``model`` when none are configured (None: peft's default for its model type)."""
    if getattr(model, "config", None) is None:  # a plain network: every linear layer, by full name
        return [n for n, m in model.named_modules() if is_linear(m)]
    if peft_knows(model):
        return None
    names = set(linear_layer_names(model))
    for group in ATTENTION_NAMES:
        if names.issuperset(group):
            return list(group)
    return sorted(names)  # peft's all-linear: every linear layer (an AutoModel backbone has no output layer to leave out)


def unmatched_targets(targets: Sequence[str], model: nn.Module) -> list[str]:
    """Entries of ``targets`` that match no module (peft's rule: the module's name or its dotted suffix)."""
    names = [n for n, _ in model.named_modules() if n]
    return [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
