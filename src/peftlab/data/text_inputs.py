"""Text inputs: raw texts as sources read them, and token ids as the datamodule serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class TextColumn:
    """Raw texts of a table: ``texts[i]`` (and ``pairs[i]`` for sentence-pair tasks) is row ``i``.

    ``pairs`` is None when no row has a second text; a single row without one holds None.
    """

    texts: list[str]
    pairs: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: torch.Tensor) -> "TextColumn":
        """Rows ``index``."""
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        return TextColumn([self.texts[i] for i in rows], [self.pairs[i] for i in rows] if self.pairs is not None else None)


@dataclass
class PromptResponses:
    """Raw prompt / response pairs of a causal-LM task: row ``i`` is ``prompts[i]`` answered by ``responses[i]``."""

    prompts: list[str]
    responses: list[str]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, index: torch.Tensor) -> "PromptResponses":
        """Rows ``index``."""
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        return PromptResponses([self.prompts[i] for i in rows], [self.responses[i] for i in rows])


@dataclass
class Conversations:
    """Chat rows of a causal-LM task: ``messages[i]`` is row ``i``, a list of ``{"role", "content"}``
    turns; the loss reads the assistant turns only (see :mod:`~peftlab.data.tokenize_chat`).

    ``template`` is how a row becomes text: ``auto`` (the tokenizer's chat template when it has
    one, else the plain template), ``tokenizer`` (its chat template; none is an error) or
    ``plain``; ``config_key`` names the setting in error messages.
    """

    messages: list[list[dict[str, str]]]
    template: str = "auto"
    config_key: str = "data.source"

    def __len__(self) -> int:
        return len(self.messages)

    def subset(self, index: torch.Tensor) -> "Conversations":
        """Rows ``index``."""
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        return Conversations([self.messages[i] for i in rows], self.template, self.config_key)


class TokenizedTexts:
    """Token ids of many texts in one flat tensor plus offsets (compact in memory and on disk).

    ``batch(index)`` pads the chosen rows to the longest of them (dynamic padding, on the
    right) and returns ``{"input_ids", "attention_mask"[, "token_type_ids"][, "lm_labels"]}``,
    each ``[B, L]``; ``lm_labels`` (prompt + response rows) holds the token ids from each row's
    ``label_starts`` on and -100 before it and in the padding.

    Args:
        ids: every row's token ids, one after the other (1-D).
        offsets: row ``i`` is ``ids[offsets[i]:offsets[i + 1]]`` (``len(rows) + 1`` entries).
        type_ids: segment ids aligned with ``ids`` (sentence pairs), or None if the tokenizer makes none.
        pad_id: id written into padded positions (masked out by ``attention_mask``).
        label_starts: per row, the position where its response (its labelled tokens) begins; a
            row's length when it has none; None: no row has labelled tokens (not causal-LM data).
        label_mask: instead of ``label_starts``, which tokens are labelled, aligned with ``ids``
            (chat rows: the assistant turns, wherever they are).
    """

    def __init__(self, ids: torch.Tensor, offsets: torch.Tensor, type_ids: torch.Tensor | None, pad_id: int, label_starts: torch.Tensor | None = None, label_mask: torch.Tensor | None = None):
        self.ids, self.offsets, self.type_ids, self.pad_id = ids, offsets.long(), type_ids, int(pad_id)
        self.label_starts = label_starts.long() if label_starts is not None else None
        self.label_mask = label_mask.bool() if label_mask is not None else None

    @property
    def labelled(self) -> bool:
        """Whether the rows carry token labels (prompt / response or chat rows)."""
        return self.label_starts is not None or self.label_mask is not None

    def token_labels(self) -> torch.Tensor:
        """Which tokens are labelled, aligned with ``ids`` (from ``label_mask`` or ``label_starts``)."""
        if self.label_mask is not None:
            return self.label_mask
        if self.label_starts is None:
            return torch.zeros(len(self.ids), dtype=torch.bool)
        within = torch.arange(len(self.ids)) - torch.repeat_interleave(self.offsets[:-1], self.lengths)
        return within >= torch.repeat_interleave(self.label_starts, self.lengths)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> torch.Tensor:
        """Number of tokens of each row."""
        return self.offsets[1:] - self.offsets[:-1]

    def _gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in ``ids`` of rows ``index`` (concatenated) and those rows' lengths."""
        index = torch.as_tensor(index, dtype=torch.long)
        lengths = self.lengths[index]
        starts = self.offsets[index]
        new_starts = torch.cumsum(lengths, 0) - lengths
        within = torch.arange(int(lengths.sum())) - torch.repeat_interleave(new_starts, lengths)
        return torch.repeat_interleave(starts, lengths) + within, lengths

    def subset(self, index: torch.Tensor) -> "TokenizedTexts":
        """Rows ``index``."""
        pos, lengths = self._gather(index)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
        type_ids = self.type_ids[pos] if self.type_ids is not None else None
        starts = self.label_starts[torch.as_tensor(index, dtype=torch.long)] if self.label_starts is not None else None
        label_mask = self.label_mask[pos] if self.label_mask is not None else None
        return TokenizedTexts(self.ids[pos], offsets, type_ids, self.pad_id, starts, label_mask)

    def batch(self, index: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``index`` padded to the longest of them."""
        pos, lengths = self._gather(index)
        width = int(lengths.max()) if len(lengths) else 0
        mask = torch.arange(width) < lengths[:, None]
        input_ids = torch.full((len(lengths), width), self.pad_id, dtype=torch.long)
        input_ids[mask] = self.ids[pos].long()
        out = {"input_ids": input_ids, "attention_mask": mask.long()}
        if self.type_ids is not None:
            token_type_ids = torch.zeros_like(input_ids)
            token_type_ids[mask] = self.type_ids[pos].long()
            out["token_type_ids"] = token_type_ids
        if self.label_mask is not None:
            labelled = torch.zeros_like(mask)
            labelled[mask] = self.label_mask[pos]
            out["lm_labels"] = torch.where(labelled, input_ids, torch.full_like(input_ids, -100))
        elif self.label_starts is not None:
            starts = self.label_starts[torch.as_tensor(index, dtype=torch.long)]
            labelled = mask & (torch.arange(width) >= starts[:, None])
            out["lm_labels"] = torch.where(labelled, input_ids, torch.full_like(input_ids, -100))
        return out

    @staticmethod
    def concat(parts: Sequence["TokenizedTexts"]) -> "TokenizedTexts":
        """The rows of every part, in order (parts must agree on the tokenizer)."""
        offsets, total = [torch.zeros(1, dtype=torch.long)], 0
        for p in parts:
            offsets.append(p.offsets[1:] + total)
            total += int(p.offsets[-1])
        has_types = all(p.type_ids is not None for p in parts)
        type_ids = torch.cat([p.type_ids for p in parts]) if has_types else None
        starts = label_mask = None
        if any(p.label_mask is not None for p in parts):  # chat rows among them: one token mask for all
            label_mask = torch.cat([p.token_labels() for p in parts])
        elif any(p.label_starts is not None for p in parts):  # rows without a response: no labelled token
            starts = torch.cat([p.label_starts if p.label_starts is not None else p.lengths for p in parts])
        return TokenizedTexts(torch.cat([p.ids for p in parts]), torch.cat(offsets), type_ids, parts[0].pad_id, starts, label_mask)
