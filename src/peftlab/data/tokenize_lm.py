"""Tokenisation of prompt / response rows (causal-LM tasks): prompt ids, then response ids and the end-of-sequence id."""

from __future__ import annotations

import logging

import torch

from peftlab.data.text_inputs import PromptResponses, TokenizedTexts
from peftlab.errors import ConfigError

log = logging.getLogger(__name__)


def end_of_sequence_id(tokenizer) -> int:
    """The id that ends every response: the tokenizer's end-of-sequence token (its separator for
    BERT-style tokenizers, which have none)."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise ConfigError("data.tokenizer", "has no end-of-sequence (or separator) token to end responses with; give a decoder's tokenizer")
    return int(eos)


def fit_to_length(prompt: list[int], response: list[int], max_length: int) -> tuple[list[int], list[int], bool, bool]:
    """``(prompt, response, prompt cut, response cut)`` with at most ``max_length`` tokens together.

    The prompt is truncated **from the left** (its end, next to the response, is kept); a response
    that alone leaves no room for one prompt token is cut on the right to ``max_length - 1``
    tokens (it then loses its end-of-sequence token).
    """
    response_cut = len(response) > max_length - 1
    if response_cut:
        response = response[: max_length - 1]
    room = max_length - len(response)
    prompt_cut = len(prompt) > room
    if prompt_cut:
        prompt = prompt[len(prompt) - room :]
    return prompt, response, prompt_cut, response_cut


def tokenize_prompt_response(column: PromptResponses, tokenizer, max_length: int) -> TokenizedTexts:
    """Token ids of every row: the prompt (with the tokenizer's special tokens, e.g. Llama's
    beginning-of-sequence) followed by the response and the end-of-sequence id; each row's
    response start is kept as its ``label_starts`` (the loss reads only the tokens from there on).

    A row longer than ``max_length`` has its prompt truncated from the left (see
    :func:`fit_to_length`); how many prompts (and responses) were cut is logged as one warning line.
    """
    if max_length < 2:
        raise ConfigError("data.max_length", f"must be at least 2 for prompt + response rows; got {max_length}")
    eos = end_of_sequence_id(tokenizer)
    prompts = tokenizer(column.prompts)["input_ids"] if len(column) else []
    responses = tokenizer(column.responses, add_special_tokens=False)["input_ids"] if len(column) else []
    ids: list[int] = []
    lengths, starts = [], []
    prompts_cut = responses_cut = 0
    for prompt, response in zip(prompts, responses):
        prompt, response, p_cut, r_cut = fit_to_length(list(prompt), list(response) + [eos], max_length)
        prompts_cut += p_cut
        responses_cut += r_cut
        ids += prompt + response
        starts.append(len(prompt))
        lengths.append(len(prompt) + len(response))
    if prompts_cut or responses_cut:
        log.warning(f"data: {prompts_cut} prompt(s) truncated from the left and {responses_cut} response(s) cut at the end to fit data.max_length={max_length} tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos  # decoders without a pad token: the padding is masked
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.tensor(lengths, dtype=torch.long), 0)])
    return TokenizedTexts(torch.tensor(ids, dtype=torch.int32), offsets, None, pad, torch.tensor(starts, dtype=torch.long))
