"""A pretrained Hugging Face transformer (any ``AutoModel``) as a backbone: token states pooled to one vector."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from peftlab.checkpoints.base_fingerprint import folder_fingerprint
from peftlab.errors import ConfigError
from peftlab.models.pooling import POOLINGS, pool
from peftlab.packaged_assets import looks_local, pretrained_path

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_pretrained(name_or_path: str, trust_remote_code: bool = False, dtype: str | None = None, causal_lm: bool = False) -> nn.Module:
    """``AutoModel.from_pretrained`` (``AutoModelForCausalLM`` with ``causal_lm``: the decoder with
    its LM head) with one-line errors naming the config key at fault.

    A local-looking path that is not a directory fails before ``transformers`` is asked (no
    network attempt); hub ids follow the usual cache / ``HF_HUB_OFFLINE`` rules.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    # packaged names (minilm) -> their unpacked folder, as the tokenizer does; a missing local folder: "no such directory: <abs path>"
    name_or_path = pretrained_path(name_or_path)
    if looks_local(name_or_path):
        path = Path(name_or_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError("model.name_or_path", f"{name_or_path} has no config.json; give a folder written by save_pretrained")
        name_or_path = str(path)
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError("model.dtype", f"must be null or one of {', '.join(DTYPES)}; got {dtype!r}")
    kwargs = {}
    if dtype:  # transformers < 4.56 calls it torch_dtype
        import transformers

        newer = tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56)
        kwargs["dtype" if newer else "torch_dtype"] = DTYPES[dtype]
    try:
        auto = AutoModelForCausalLM if causal_lm else AutoModel
        return auto.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ConfigError("model.trust_remote_code", f"{name_or_path} runs custom code from its repository; set model.trust_remote_code=true only if you trust it") from None
        raise ConfigError("model.name_or_path", f"{name_or_path}: {str(err).splitlines()[0]}") from None
    except OSError as err:
        raise ConfigError("model.name_or_path", f"cannot load {name_or_path}: {str(err).splitlines()[0]}") from None


def weights_folder(name_or_path: str) -> str | None:
    """The local folder ``from_pretrained`` read ``name_or_path`` from: the folder itself, or a hub
    id's snapshot in the Hugging Face cache (looked up offline); None when not found there."""
    from huggingface_hub import try_to_load_from_cache

    path = pretrained_path(name_or_path)
    if looks_local(path):
        return str(Path(path).expanduser().resolve())
    found = try_to_load_from_cache(path, "config.json")
    return str(Path(found).parent) if isinstance(found, str) else None


class HFBackbone(nn.Module):
    """A Hugging Face ``AutoModel`` (encoder or decoder) whose token states are pooled per sequence.

    ``forward(input_ids, attention_mask=None, token_type_ids=None, ...)`` returns ``[B, hidden]``
    float32 features (the heads stay float32 whatever ``dtype`` the backbone runs in).

    Args:
        name_or_path: a hub id (``bert-base-uncased``) or a local folder written by ``save_pretrained``.
        pooling: ``cls`` (encoders), ``mean`` (sentence encoders) or ``last`` (decoders).
        trust_remote_code: allow models whose code lives in their repository (off unless set).
        gradient_checkpointing: recompute activations in backward (less memory, ~30 % slower).
        dtype: ``null`` (the checkpoint's float32), ``bfloat16`` or ``float16``.
    """

    def __init__(self, name_or_path: str, pooling: str = "cls", trust_remote_code: bool = False, gradient_checkpointing: bool = False, dtype: str | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError("model.pooling", f"must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.name_or_path = str(name_or_path)
        self.pooling = pooling
        # from_pretrained returns the model in eval mode; a module starts in training mode (dropout on)
        self.model = load_pretrained(self.name_or_path, trust_remote_code, dtype).train()
        if gradient_checkpointing:
            # non-reentrant checkpointing also works when the embeddings are frozen (adapters, BitFit);
            # transformers >= 5 renamed the call (the old name still works there, with a warning)
            if hasattr(self.model, "activation_checkpointing_enable"):
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.out_dim = int(self.model.config.hidden_size)
        self.weights_dir = weights_folder(self.name_or_path)

    def base_fingerprint(self) -> dict[str, str] | None:
        """Digests of the folder the pretrained weights came from (None if it cannot be found); see
        :mod:`peftlab.checkpoints.base_fingerprint`. An adapter-only checkpoint records it."""
        return folder_fingerprint(self.weights_dir) if self.weights_dir else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, hidden]``."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        return pool(hidden, attention_mask, self.pooling).float()
