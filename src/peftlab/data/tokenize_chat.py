"""Tokenisation of chat rows (causal-LM tasks): the conversation as the model's chat template writes
it, with token labels on the assistant turns only.

Templates:

- ``tokenizer``: the tokenizer's own chat template (``apply_chat_template``). Each assistant turn's
  labelled text is what the template adds for that turn after the generation prompt (its content
  and the template's end-of-turn text), found by rendering the conversation up to that turn with
  and without it; every rendering must start with the previous one (templates that rewrite
  earlier turns are refused with one line).
- ``plain`` (documented fallback for tokenizers without a template): the tokenizer's special
  start tokens, then per turn ``"<role>: <content>\\n"``; an assistant turn is ``"assistant: "``
  (not labelled) followed by its content and the end-of-sequence token (labelled).
- ``auto``: ``tokenizer`` when the tokenizer has a chat template, else ``plain``.

An assistant turn whose labelled tokens hold no end-of-sequence token gets one appended (labelled),
so that generation learns to stop; template text after a turn's end-of-sequence token (a newline)
is not labelled. A row longer than ``data.max_length`` loses tokens from the left
(the end of the conversation is kept), counted in one warning line.
"""

from __future__ import annotations

import logging

import torch

from peftlab.data.text_inputs import Conversations, TokenizedTexts
from peftlab.data.tokenize_lm import end_of_sequence_id
from peftlab.errors import ConfigError

log = logging.getLogger(__name__)

TEMPLATES = ("auto", "tokenizer", "plain")
ASSISTANT = "assistant"


def template_for(tokenizer, wanted: str, key: str) -> str:
    """``tokenizer`` or ``plain``: the template ``wanted`` (one of :data:`TEMPLATES`) resolves to
    for ``tokenizer``; ``tokenizer`` without a chat template is a ConfigError on ``key``."""
    if wanted not in TEMPLATES:
        raise ConfigError(key, f"must be one of {', '.join(TEMPLATES)}; got {wanted!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if wanted == "tokenizer" and not has_template:
        raise ConfigError(key, f"is 'tokenizer' but the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; use auto or plain (the documented 'role: content' template)")
    if wanted == "auto":
        return "tokenizer" if has_template else "plain"
    return wanted


def plain_pieces(messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """``(text, labelled)`` pieces of one conversation in the plain template (see the module docstring)."""
    pieces: list[tuple[str, bool]] = []
    for message in messages:
        if message["role"] == ASSISTANT:
            pieces += [(f"{ASSISTANT}: ", False), (message["content"], True)]  # + the end-of-sequence token
        else:
            pieces.append((f"{message['role']}: {message['content']}\n", False))
    return pieces


def template_pieces(messages: list[dict[str, str]], tokenizer, key: str, prompt: bool = False) -> list[tuple[str, bool]]:
    """``(text, labelled)`` pieces of one conversation as the tokenizer's chat template writes it
    (``prompt``: ending with the assistant's generation prompt, in the same piece as the turns
    before it, as training tokenises the text before an assistant turn)."""

    def render(turns: list[dict[str, str]], prompt: bool) -> str:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=prompt) if turns else ""

    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != ASSISTANT:
            continue
        before, through = render(messages[:i], True), render(messages[: i + 1], False)
        if not before.startswith(done) or not through.startswith(before):
            raise ConfigError(key, "the tokenizer's chat template rewrites earlier turns, so the assistant turns cannot be located; use chat_template=plain")
        pieces += [(before[len(done) :], False), (through[len(before) :], True)]
        done = through
    rest = render(messages, prompt)
    if not rest.startswith(done):
        raise ConfigError(key, "the tokenizer's chat template rewrites earlier turns, so the assistant turns cannot be located; use chat_template=plain")
    pieces.append((rest[len(done) :], False))
    return pieces


def conversation_tokens(messages: list[dict[str, str]], tokenizer, template: str, key: str, prompt: bool = False) -> tuple[list[int], list[bool]]:
    """Token ids of one conversation and, per token, whether the loss reads it (assistant turns);
    ``prompt``: followed by the assistant's generation prompt, tokenised as training tokenises it."""
    eos = end_of_sequence_id(tokenizer)
    if template == "plain":
        pieces = plain_pieces(messages) + ([(f"{ASSISTANT}: ", False)] if prompt else [])
    else:
        pieces = template_pieces(messages, tokenizer, key, prompt)
    ids: list[int] = list(tokenizer("", add_special_tokens=True)["input_ids"]) if template == "plain" else []
    labels: list[bool] = [False] * len(ids)
    turn: list[int] = []  # the current assistant turn's ids (to check for its end-of-sequence token)
    for text, labelled in pieces:
        piece = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        if labelled:
            turn += piece
            continue
        if turn:
            _add_turn(ids, labels, turn, eos)
            turn = []
        ids += piece
        labels += [False] * len(piece)
    if turn:
        _add_turn(ids, labels, turn, eos)
    return ids, labels


def generation_prompt_ids(messages: list[dict[str, str]], tokenizer, template: str, key: str) -> list[int]:
    """Token ids of a conversation that awaits the assistant's reply: its turns as training renders
    them (``template``: ``tokenizer`` or ``plain``), then the assistant's generation prompt (the
    template's ``add_generation_prompt`` text, or ``"assistant: "``), split into the same pieces as
    training tokenises the text before an assistant turn — what a model trained on chats rendered
    the same way continues with its reply."""
    return conversation_tokens(messages, tokenizer, template, key, prompt=True)[0]


def _add_turn(ids: list[int], labels: list[bool], turn: list[int], eos: int) -> None:
    """Append one assistant turn: labelled up to and including its first end-of-sequence token (one
    is added when it has none), the template's text after that token not labelled (generation
    stops at the end-of-sequence token, so nothing after it can be generated)."""
    end = turn.index(eos) + 1 if eos in turn else len(turn)
    head, tail = (turn[:end], turn[end:]) if eos in turn else (turn + [eos], [])
    ids += head + tail
    labels += [True] * len(head) + [False] * len(tail)


def tokenize_conversations(column: Conversations, tokenizer, max_length: int) -> TokenizedTexts:
    """Token ids of every conversation, labelled on its assistant turns (see the module docstring)."""
    key = f"{column.config_key}.chat_template"
    template = template_for(tokenizer, column.template, key)
    ids: list[int] = []
    mask: list[bool] = []
    lengths: list[int] = []
    cut = 0
    for messages in column.messages:
        row, labels = conversation_tokens(messages, tokenizer, template, key)
        if len(row) > max_length:
            row, labels, cut = row[len(row) - max_length :], labels[len(labels) - max_length :], cut + 1
        ids += row
        mask += labels
        lengths.append(len(row))
    if cut:
        log.warning(f"data: {cut} conversation(s) truncated from the left to fit data.max_length={max_length} tokens")
    eos = end_of_sequence_id(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.tensor(lengths, dtype=torch.long), 0)])
    return TokenizedTexts(torch.tensor(ids, dtype=torch.int32), offsets, None, pad, None, torch.tensor(mask, dtype=torch.bool))
