"""The causal-LM task's metrics: teacher-forced loss and perplexity, exact match of greedy generation.

Every metric is updated with ``(preds, labels)``: ``labels`` ``[N, L]`` holds the response token
ids at the response positions and ``-100`` elsewhere (prompt, padding), aligned with the input
ids; ``preds`` is a mapping with ``logits`` ``[N, L, V]`` (teacher-forced, same positions) and,
for exact match, ``generated`` ``[N, K]`` (greedy tokens after the prompt, ``-100`` after the
first end-of-sequence token).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from peftlab.tasks.token_cross_entropy import token_cross_entropy

IGNORE = -100  # label of a position that is not scored (prompt, padding)


def masked_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of the next-token cross-entropies over the scored positions, number of scored positions)``,
    in float32: position ``i``'s logits predict label ``i + 1``."""
    sums, counts = row_token_losses(logits, labels)
    return sums.sum(), counts.sum()


def row_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``logits`` ``[B, L, V]``: ``(sum of its next-token cross-entropies, number of scored
    positions)``, both ``[B]`` float32.

    The labels are shifted, not the logits (as transformers' own causal-LM loss does): slicing
    ``logits[:, :-1]`` would copy the ``[B, L, V]`` logits (206 MB for GPT-2 at batch 4 x 256),
    and its gradient once more; the last position gets label -100 and scores nothing. The
    cross-entropy is :func:`~peftlab.tasks.token_cross_entropy.token_cross_entropy`, which keeps
    one ``[B, L, V]`` tensor for the backward where ``F.cross_entropy`` keeps three."""
    target = F.pad(labels[:, 1:], (0, 1), value=IGNORE).long()
    per_token = token_cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    return per_token.view(target.shape).sum(dim=1), (target != IGNORE).sum(dim=1).float()


def _logits(preds: Any) -> torch.Tensor:
    return preds["logits"] if isinstance(preds, Mapping) else preds


class TokenLoss(Metric):
    """Mean next-token cross-entropy over every response token seen (teacher forcing); with
    ``exponentiate`` its exponential, the perplexity."""

    full_state_update = False

    def __init__(self, exponentiate: bool = False):
        super().__init__()
        self.exponentiate = exponentiate
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Any, target: torch.Tensor) -> None:
        """Add the response tokens of a batch."""
        total, tokens = masked_token_losses(_logits(preds), target)
        self.total += total.double()
        self.tokens += tokens.double()

    def compute(self) -> torch.Tensor:
        """The mean loss (or perplexity) over the tokens seen."""
        mean = self.total / self.tokens
        return mean.exp() if self.exponentiate else mean


def first_labelled_span(labels: torch.Tensor) -> torch.Tensor:
    """The reference a generation from the prompt is compared with: the first run of labelled tokens
    (a multi-turn chat row labels every assistant turn; generation answers the first one)."""
    labelled = labels != IGNORE
    if not bool(labelled.any()):
        return labels[:0]
    start = int(labelled.float().argmax())
    gaps = torch.nonzero(~labelled[start:]).flatten()
    return labels[start : start + int(gaps[0])] if len(gaps) else labels[start:]


class GeneratedExactMatch(Metric):
    """Share of rows whose greedy generation (up to and including its end-of-sequence token)
    equals the reference response (which ends with that token) exactly."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("matches", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("rows", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Any, target: torch.Tensor) -> None:
        """Compare each row's generated tokens with its reference tokens."""
        generated = preds["generated"]
        for row in range(len(target)):
            ref = first_labelled_span(target[row])
            gen = generated[row]
            self.matches += float(len(gen) >= len(ref) and bool(torch.equal(gen[: len(ref)].to(ref), ref)))
        self.rows += len(target)

    def compute(self) -> torch.Tensor:
        """Exact-match rate."""
        return self.matches / self.rows
