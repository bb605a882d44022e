"""Text-overlap metrics of a causal-LM task's greedy generations: ROUGE-L, chrF and BLEU.

Each wraps the torchmetrics text metric of that name (``torchmetrics.text``: ROUGE-L F-measure
with its default tokenisation, lower-cased alphanumeric words, needs ``nltk``; chrF with its
defaults, character 6-grams and word 2-grams, β = 2; BLEU with 4-grams and no smoothing, over
whitespace-separated words, so a reply of fewer than four words scores 0) and is updated like the
other causal-LM metrics (see :mod:`~peftlab.tasks.lm_metrics`): generated and reference token ids
are decoded to text first, each cut before its end-of-sequence token, special tokens skipped.

Decoding needs the data's tokenizer: :func:`attach_decoder` hands it to every text metric of a
module (the :class:`~peftlab.callbacks.generation_samples.GenerationSamples` callback does it at
set-up). A metric with no tokenizer attached scores the token ids written as numbers separated by
spaces (and says so once in the log).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn
from torchmetrics import Metric

IGNORE = -100  # label of a position that is not scored (prompt, padding)
TEXT_METRICS = ("rouge_l", "chrf", "bleu")

log = logging.getLogger(__name__)


def token_text(ids: torch.Tensor, stop: int | None, decode: Callable[[list[int]], str] | None) -> str:
    """``ids`` (-100 positions dropped) up to, not including, the first ``stop`` token, decoded."""
    tokens = [int(t) for t in ids.tolist() if t != IGNORE]
    if stop is not None and stop in tokens:
        tokens = tokens[: tokens.index(stop)]
    return decode(tokens) if decode is not None else " ".join(map(str, tokens))


def _inner(name: str) -> Metric:
    from torchmetrics.text import BLEUScore, CHRFScore, ROUGEScore

    return {"rouge_l": lambda: ROUGEScore(rouge_keys="rougeL"), "chrf": CHRFScore, "bleu": BLEUScore}[name]()


class GeneratedTextOverlap(Metric):
    """ROUGE-L F-measure, chrF or BLEU (``name``: rouge_l | chrf | bleu) of the decoded greedy
    generations against the decoded references, over every row seen (corpus-level, as torchmetrics
    computes it)."""

    full_state_update = False

    def __init__(self, name: str):
        super().__init__()
        if name not in TEXT_METRICS:
            raise ValueError(f"unknown text metric {name!r}; one of {', '.join(TEXT_METRICS)}")
        self.name = name
        self.inner = _inner(name)
        self.decode: Callable[[list[int]], str] | None = None
        self.eos_token_id: int | None = None
        self._warned = False

    def update(self, preds: Any, target: torch.Tensor) -> None:
        """Decode the rows' generations (``preds["generated"]``) and references (``target``) and add them."""
        if self.decode is None and not self._warned:
            log.warning(f"metric {self.name}: no tokenizer attached, so token ids are scored as words (see peftlab.tasks.text_metrics.attach_decoder)")
            self._warned = True
        generated = preds["generated"]
        hyps = [token_text(generated[row], self.eos_token_id, self.decode) for row in range(len(target))]
        refs = [token_text(target[row], self.eos_token_id, self.decode) for row in range(len(target))]
        if self.name == "rouge_l":
            self.inner.update(hyps, refs)
        else:
            self.inner.update(hyps, [[r] for r in refs])

    def compute(self) -> torch.Tensor:
        """The score over the rows seen (ROUGE-L: its F-measure)."""
        value = self.inner.compute()
        return value["rougeL_fmeasure"] if isinstance(value, dict) else value

    def reset(self) -> None:
        """Forget the rows seen."""
        super().reset()
        self.inner.reset()


def attach_decoder(module: nn.Module, tokenizer: Any) -> int:
    """Hand ``tokenizer`` (its ``decode``, skipping special tokens, and its end-of-sequence id) to
    every :class:`GeneratedTextOverlap` inside ``module``; returns how many there were."""
    count = 0
    for metric in module.modules():
        if isinstance(metric, GeneratedTextOverlap):
            metric.decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
            metric.eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
            count += 1
    return count
