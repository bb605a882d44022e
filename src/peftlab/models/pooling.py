"""Pool a transformer's token states ``[B, L, H]`` into one vector per sequence ``[B, H]``."""

from __future__ import annotations

import torch

POOLINGS = ("cls", "mean", "last")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """``cls``: the first token; ``mean``: mean over non-padding tokens; ``last``: the last non-padding token.

    ``last`` is for decoders (GPT-2, Llama-style): the position of the last 1 in the attention
    mask, so it is right for right padding and for left padding alike.
    """
    if how == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1) if how == "mean" else hidden[:, -1]
    mask = attention_mask.to(hidden.dtype)
    if how == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    last = (attention_mask.long() * (positions + 1)).argmax(dim=1)  # (+1 so a row's token 0 beats its padding)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
