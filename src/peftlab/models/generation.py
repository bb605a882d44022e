"""Greedy generation from a Hugging Face causal LM, and the prompts of a training-shaped batch.

:func:`greedy_generate` is a plain loop (one forward of the left-padded prompts, then one token
at a time through the key/value cache) that gives the same tokens as ``model.generate(...,
do_sample=False)``; :func:`prompt_batch` cuts the prompts out of a right-padded prompt + response
batch and left-pads them for it.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

IGNORE = -100  # label of positions that are not scored (see peftlab.tasks.lm_metrics)


@torch.no_grad()
def greedy_generate(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, eos_token_id: int | None, pad_token_id: int) -> torch.Tensor:
    """Up to ``max_new_tokens`` greedy tokens after each left-padded prompt, ``[B, K]`` (K <= max_new_tokens).

    A row stops after its end-of-sequence token (``eos_token_id``; None: never) and is filled with
    ``pad_token_id`` from there; the loop ends early once every row has stopped. Positions count
    from each row's first real token, as ``model.generate`` counts them under left padding.
    """
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # only the last position's logits are read: asking for those alone (as model.generate does) spares a [B, P, vocab] tensor
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(type(model).forward).parameters else {}
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **keep)
    done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
    tokens: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        next_token = out.logits[:, -1].argmax(-1)
        next_token = torch.where(done, torch.full_like(next_token, pad_token_id), next_token)
        tokens.append(next_token)
        if eos_token_id is not None:
            done = done | (next_token == eos_token_id)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=next_token[:, None], attention_mask=mask, position_ids=positions, use_cache=True, **cache_argument(model, out))
    return torch.stack(tokens, dim=1) if tokens else input_ids.new_zeros(len(input_ids), 0)


def cache_argument(model: nn.Module, out: Any) -> dict[str, Any]:
    """The previous step's key/value cache as the next forward takes it: ``cache`` (transformers
    >= 5.2x) or ``past_key_values`` (earlier)."""
    if "cache" in inspect.signature(type(model).forward).parameters:
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}


def prompt_batch(input_ids: torch.Tensor, attention_mask: torch.Tensor, lm_labels: torch.Tensor, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts of prompt + response rows (the tokens before each row's first labelled position),
    left-padded with ``pad_token_id``: ``(input_ids, attention_mask)``, each ``[B, P]``."""
    labelled = lm_labels != IGNORE
    first = torch.where(labelled.any(1), labelled.float().argmax(1), attention_mask.long().sum(1))
    lengths = torch.minimum(first, attention_mask.long().sum(1))
    longest = int(lengths.max()) if len(lengths) else 0
    ids = torch.full((len(input_ids), longest), pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
    mask = torch.zeros((len(input_ids), longest), dtype=torch.long, device=input_ids.device)
    for row, n in enumerate(lengths.tolist()):
        if n:
            ids[row, longest - n :] = input_ids[row, :n]
            mask[row, longest - n :] = 1
    return ids, mask


def ignore_after_eos(generated: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """``generated`` with every position after a row's first end-of-sequence token set to -100."""
    if eos_token_id is None or generated.shape[1] == 0:
        return generated
    is_eos = (generated == eos_token_id).long()
    after = (is_eos.cumsum(1) - is_eos) > 0
    return generated.masked_fill(after, IGNORE)
