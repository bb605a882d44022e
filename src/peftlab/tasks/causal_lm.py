"""Causal language modelling: a prompt, and a response the model learns to generate.

Rows are prompt + response token ids (the response ends with the tokenizer's end-of-sequence
token); the batches carry their token-level labels as ``lm_labels`` ``[B, L]`` beside ``y``
(the response's ids at its positions, ``-100`` at the prompt's and the padding's), so the
per-row label ``y`` of a causal-LM task is only a "this row belongs to the task" flag (1.0).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torchmetrics import Metric

from peftlab.errors import ConfigError
from peftlab.tasks.base import SpecFields, TaskType
from peftlab.tasks.lm_metrics import GeneratedExactMatch, TokenLoss, masked_token_losses, row_token_losses
from peftlab.tasks.registry import register_task_type
from peftlab.tasks.text_metrics import TEXT_METRICS, GeneratedTextOverlap

#: the metrics that read greedy generations (the model generates during evaluation when a task has one)
GENERATION_METRICS = ("exact_match", *TEXT_METRICS)


@register_task_type
class CausalLMTask(TaskType):
    """Generate the response of a prompt (``type: causal_lm``; needs ``model=hf_causal_lm``).

    Loss: next-token cross-entropy on the response tokens only (prompt and padding masked with
    -100), averaged over every response token of the task's rows in the batch; that per-task
    loss is what the weighting methods see. Metrics: ``exact_match`` (greedy generation with
    left padding, stopped at the end-of-sequence token, equal to the reference; the main
    metric by default), ``rouge_l``, ``chrf`` and ``bleu`` (the same generations decoded to text,
    scored by torchmetrics: see :mod:`~peftlab.tasks.text_metrics`; any of them may be the main
    metric, ``metric: rouge_l``), ``loss`` and ``perplexity`` (teacher-forced, lower is better,
    so never main).
    The head is the decoder's own LM head (part of the backbone, so the sharing policy decides
    whether it trains); the task adds no parameters of its own.
    """

    name = "causal_lm"
    metrics = ("exact_match", *TEXT_METRICS, "loss", "perplexity")
    default_metrics = ("exact_match", "perplexity")
    main_metrics = ("exact_match", *TEXT_METRICS)
    generates = True

    def num_classes(self, value: Any, key: str) -> int:
        """``num_classes``: 0 or left out (the vocabulary is the model's)."""
        if value is not None and (value != 0 or isinstance(value, bool)):
            raise ConfigError(key, f"a causal_lm task has no classes (its vocabulary is the model's): leave it out; got {value!r}")
        return 0

    def out_dim(self, spec: SpecFields) -> int:
        """0: the output width is the body's (the vocabulary), not the task's."""
        return 0

    def make_head(self, in_dim: int, spec: SpecFields) -> nn.Module:
        """No head of its own: the body already gives token logits ``[B, L, V]``."""
        return nn.Identity()

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (float32) over the response tokens of the given rows
        (``output``: logits ``[N, L, V]``, ``target``: ``lm_labels`` ``[N, L]``)."""
        total, tokens = masked_token_losses(output, target)
        return total / tokens

    def row_loss_terms(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the sum of its response tokens' cross-entropies and their number (a task's loss is
        the ratio of their sums over its rows)."""
        return row_token_losses(output, target)

    def make_metric(self, name: str, spec: SpecFields) -> Metric:
        """exact_match, rouge_l, chrf, bleu, loss or perplexity."""
        if name == "exact_match":
            return GeneratedExactMatch()
        if name in TEXT_METRICS:
            return GeneratedTextOverlap(name)
        if name in ("loss", "perplexity"):
            return TokenLoss(exponentiate=name == "perplexity")
        raise ValueError(f"unknown causal_lm metric {name!r}")

    def metric_inputs(self, output: Any, target: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Unchanged: ``output`` is ``{"logits", "generated"}`` during evaluation (see
        :mod:`~peftlab.tasks.lm_metrics`), ``target`` the ``lm_labels``."""
        return output, target

    def targets(self, batch: Mapping[str, Any], t: int) -> torch.Tensor:
        """The batch's token-level labels ``lm_labels`` ``[B, L]`` (the same for every causal-LM task:
        the task's rows are chosen by ``task_mask``)."""
        if "lm_labels" not in batch:
            raise ConfigError("data.tasks", "a causal_lm task needs prompt/response rows (data.sources.<task>.prompt and .response); this batch has no lm_labels")
        return batch["lm_labels"]
