"""Greedy generations of a trained causal-LM model for new prompts (what ``predict.py`` writes for causal_lm tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from peftlab.errors import ConfigError
from peftlab.models.causal_lm_body import decoders_of, generate_rows, generator_of
from peftlab.models.generation import ignore_after_eos
from peftlab.tasks.text_metrics import token_text

DEFAULT_NEW_TOKENS = 64


def generates(model: Any) -> bool:
    """Whether the model's tasks are causal-LM tasks (it predicts text, not labels)."""
    return any(t.task_type.generates for t in model.tasks)


def new_tokens(model: Any, value: Any) -> int:
    """``max_new_tokens`` checked: a whole number >= 1 for a causal-LM model (None: the default);
    a model without an LM head refuses it with one line."""
    if not generates(model):
        if value is not None:
            names = ", ".join(f"{t.name} ({t.type})" for t in model.tasks)
            raise ConfigError("max_new_tokens", f"this model has no LM head to generate with (its tasks: {names}); it predicts labels: leave max_new_tokens out")
        return 0
    if value is None:
        return DEFAULT_NEW_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("max_new_tokens", f"must be a whole number >= 1; got {value!r}")
    return value


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation to answer, already rendered: ``text`` (the turns as JSON, for the output) and
    ``ids`` (its tokens and the assistant's generation prompt, see
    :func:`~peftlab.data.tokenize_chat.generation_prompt_ids`)."""

    text: str
    ids: list[int]


def left_padded(tokenizer: Any, prompts: Sequence[str | ChatPrompt], max_length: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``prompts`` (texts with the tokenizer's special tokens, chats as rendered; cut from
    the left to ``max_length`` as in training), left-padded: ``(input_ids, attention_mask)``."""
    texts = [p for p in prompts if isinstance(p, str)]
    encoded = iter(tokenizer(texts)["input_ids"] if texts else [])
    rows = [list(p.ids if isinstance(p, ChatPrompt) else next(encoded))[-max_length:] for p in prompts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
    return ids, mask


def per_task_generations(body: Any) -> bool:
    """Whether the causal-LM tasks generate through different weights (``task_lora`` adapters or
    ``separate`` decoders): then each prompt gets one generation per causal-LM task."""
    decoders = decoders_of(body)
    return bool(getattr(body, "routes_by_task", False)) or len({id(d) for d in decoders.values()}) > 1


@torch.no_grad()
def generation_rows(model: Any, prompts: Sequence[str | ChatPrompt], max_new_tokens: int, batch_size: int = 64, device: str = "cpu") -> list[dict[str, str]]:
    """``{"text": prompt, "generation": text}`` per prompt (a chat: its turns as JSON): greedy decoding up to the end-of-sequence
    token or ``max_new_tokens`` tokens, special tokens left out. When the causal-LM tasks generate
    through different weights (``task_lora`` / ``separate``), one ``generation/<task>`` column per
    causal-LM task, each prompt routed through that task's adapter or decoder."""
    body = model.network.body
    decoder = generator_of(body)
    if decoder is None:
        raise ConfigError("ckpt_path", "this checkpoint's model has no decoder with an LM head (model=hf_causal_lm) to generate with")
    model.to(device)
    tokenizer, pad = model.tokenizer, int(decoder.model.config.pad_token_id or 0)
    names = list(getattr(body, "task_names", decoders_of(body)))
    lm_tasks = [t.name for t in model.tasks if t.task_type.generates]
    columns = {f"generation/{name}": name for name in lm_tasks} if per_task_generations(body) else {"generation": lm_tasks[0]}
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        ids, mask = left_padded(tokenizer, chunk, model.max_length, pad)
        ids, mask = ids.to(device), mask.to(device)
        chunk_rows = [{"text": prompt.text if isinstance(prompt, ChatPrompt) else prompt} for prompt in chunk]
        for column, task in columns.items():
            task_ids = torch.full((len(chunk),), names.index(task), dtype=torch.long, device=device)
            out = ignore_after_eos(generate_rows(body, task_ids, ids, mask, max_new_tokens), decoder.eos_token_id).cpu()
            for row, tokens in zip(chunk_rows, out):
                row[column] = token_text(tokens, decoder.eos_token_id, lambda t: tokenizer.decode(t, skip_special_tokens=True))
        rows.extend(chunk_rows)
    return rows
