"""Uniform handling of a table's inputs, whatever they are: a feature tensor, raw texts or token ids."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from peftlab.data.text_inputs import Conversations, PromptResponses, TextColumn, TokenizedTexts

Inputs = Any  # torch.Tensor | TextColumn | TokenizedTexts


def take_rows(x: Inputs, index: torch.Tensor) -> Inputs:
    """Rows ``index`` of ``x``, in the same form."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(index, dtype=torch.long)]
    return x.subset(index)


def concat_rows(parts: Sequence[Inputs]) -> Inputs:
    """The rows of every part in order (all parts of one form)."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(list(parts))
    if all(isinstance(p, TokenizedTexts) for p in parts):
        return TokenizedTexts.concat(parts)
    raise ValueError("cannot mix feature tensors and texts in one datamodule")


def batch_inputs(x: Inputs, index: Sequence[int]) -> torch.Tensor | dict[str, torch.Tensor]:
    """What a batch carries under ``"inputs"``: a tensor, or padded token tensors for texts."""
    if isinstance(x, TokenizedTexts):
        return x.batch(index)
    return x[torch.as_tensor(index, dtype=torch.long)]


def is_text(x: Inputs) -> bool:
    """Whether ``x`` holds texts (raw or tokenised)."""
    return isinstance(x, (TextColumn, PromptResponses, Conversations, TokenizedTexts))
