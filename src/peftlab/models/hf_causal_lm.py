"""A Hugging Face decoder with its LM head (``AutoModelForCausalLM``) as a backbone: token logits for causal-LM tasks."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import nn

from peftlab.checkpoints.base_fingerprint import folder_fingerprint
from peftlab.errors import ConfigError
from peftlab.models.generation import greedy_generate
from peftlab.models.hf import load_pretrained, weights_folder
from peftlab.models.pooling import POOLINGS, pool

log = logging.getLogger(__name__)
UNSAFE_FIELDS = ("auto_map", "trust_remote_code", "custom_pipelines")  # keys that make transformers import code


def build_from_config(config: Mapping[str, Any], seed: int) -> nn.Module:
    """A randomly initialised causal LM from a config mapping (``model_type`` plus that config's
    fields, e.g. ``{model_type: llama, hidden_size: 64, ...}``), initialised from ``seed``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(config)
    model_type = fields.pop("model_type", None)
    for key in fields:  # values only: a stored config must not name code to fetch or import (auto_map, attn kernels)
        if not isinstance(key, str) or key.startswith("_") or key in UNSAFE_FIELDS or key.endswith("_implementation"):
            raise ConfigError(f"model.config.{key}", "names code to load (remote classes, attention kernels); build configs take sizes and token ids only")
    if not model_type:
        raise ConfigError("model.config.model_type", "required: the architecture to build (llama, gpt2, qwen2, ...)")
    try:
        hf_config = AutoConfig.for_model(str(model_type), **fields)
    except (ValueError, TypeError) as err:
        raise ConfigError("model.config", f"cannot build a {model_type} config: {str(err).splitlines()[0]}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(hf_config)


def set_pad_token(model: nn.Module) -> None:
    """Give a model without a pad token id its end-of-sequence id as pad (GPT-2, Llama), with a note."""
    config = model.config
    if getattr(config, "pad_token_id", None) is None and getattr(config, "eos_token_id", None) is not None:
        eos = config.eos_token_id
        config.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = config.pad_token_id
        log.info(f"model: no pad token id; using the end-of-sequence id {config.pad_token_id} (padded positions are masked)")


class HFCausalLMBackbone(nn.Module):
    """A decoder with its LM head whose forward gives token logits ``[B, L, vocab]`` (float32), and
    with ``pooling`` set also pooled features for classification / regression heads:
    ``{"logits": [B, L, vocab], "pooled": [B, hidden]}`` (each task's head reads its kind's entry,
    see :class:`~peftlab.models.heads.TaskHeads`).

    Tasks of type ``causal_lm`` read these logits directly (their loss masks all but the
    response tokens); the LM head belongs to the backbone, so ``strategy/sharing`` decides
    whether it trains (full: yes; LoRA, BitFit: frozen or biases only). :meth:`generate` runs
    greedy generation (left-padded prompts, stop at end-of-sequence).

    Args:
        name_or_path: a hub id or a local folder written by ``save_pretrained`` (GPT-2, Llama,
            Qwen, Mistral-style); null when ``config`` is given.
        config: instead of pretrained weights, a randomly initialised model of this config
            (``model_type`` plus its fields; the offline example's small Llama).
        seed: the random initialisation's seed (``config`` only).
        trust_remote_code: allow models whose code lives in their repository (off unless set).
        gradient_checkpointing: recompute activations in backward (less memory, slower).
        dtype: ``null`` (float32), ``bfloat16`` or ``float16`` (pretrained weights only).
        pooling: null (token logits only), or ``last`` / ``mean``: also the last hidden states
            pooled per row, for classification / regression tasks on the same decoder.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        dtype: str | None = None,
        pooling: str | None = None,
    ):
        super().__init__()
        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError("model.pooling", f"must be null (token logits only) or one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.pooling = pooling
        if (name_or_path is None) == (config is None):
            raise ConfigError("model.name_or_path", "give either a pretrained model (model.name_or_path) or model.config to build one, not both")
        self.name_or_path = str(name_or_path) if name_or_path is not None else ""
        if config is not None:
            self.model = build_from_config(config, seed).train()
        else:
            self.model = load_pretrained(self.name_or_path, trust_remote_code, dtype, causal_lm=True).train()
        set_pad_token(self.model)
        if gradient_checkpointing:  # non-reentrant: also with frozen embeddings (LoRA, BitFit); transformers >= 5 renamed the call
            if hasattr(self.model, "activation_checkpointing_enable"):
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # the width the task heads read: pooled hidden states when pooling, else (no heads: causal-LM tasks only) the vocabulary
        self.out_dim = int(self.model.config.hidden_size if pooling else self.model.config.vocab_size)
        self.weights_dir = weights_folder(self.name_or_path) if self.name_or_path else None

    def base_fingerprint(self) -> dict[str, str] | None:
        """Digests of the folder the pretrained weights came from (None when built from a config)."""
        return folder_fingerprint(self.weights_dir) if self.weights_dir else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Token logits ``[B, L, vocab]`` in float32; with ``pooling``, ``{"logits", "pooled"}``."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, output_hidden_states=self.pooling is not None, **inputs)
        if self.pooling is None:
            return out.logits.float()
        return {"logits": out.logits.float(), "pooled": pool(out.hidden_states[-1], attention_mask, self.pooling).float()}

    @property
    def eos_token_id(self) -> int | None:
        """The end-of-sequence id generation stops at (the first one when the config lists several)."""
        eos = self.model.config.eos_token_id
        return eos[0] if isinstance(eos, (list, tuple)) else eos

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy tokens after left-padded prompts, ``[B, K]``, padded after end-of-sequence (see
        :func:`~peftlab.models.generation.greedy_generate`); runs in eval mode and restores the mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            return greedy_generate(self.model, input_ids, attention_mask, max_new_tokens, self.eos_token_id, int(self.model.config.pad_token_id or 0))
        finally:
            self.model.train(was_training)
