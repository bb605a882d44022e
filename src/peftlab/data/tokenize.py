"""Tokenisation of a table's texts with a Hugging Face tokenizer, cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging

import torch

from peftlab.data.char_tokenizer import NAME as CHARS_NAME
from peftlab.data.char_tokenizer import char_tokenizer_path
from peftlab.data.text_inputs import TextColumn, TokenizedTexts
from peftlab.data.token_cache import cache_path, cached
from peftlab.errors import ConfigError
from peftlab.packaged_assets import pretrained_path

_CHUNK = 4096  # texts per tokenizer call
CHARS_PER_TOKEN = 32  # a generous bound on characters per token: texts are cut to max_length x this first
log = logging.getLogger(__name__)


def load_tokenizer(name_or_path: str, key: str = "data.tokenizer"):
    """``AutoTokenizer.from_pretrained`` of a hub id, a local directory, a packaged name (``minilm``)
    or ``chars`` (the built-in character-level tokenizer: :mod:`~peftlab.data.char_tokenizer`)."""
    from transformers import AutoTokenizer

    path = char_tokenizer_path() if name_or_path == CHARS_NAME else pretrained_path(name_or_path, key)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(key, f"cannot load a tokenizer from {name_or_path!r} (a hub id, a local directory, or minilm): {first}") from None


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash that changes whenever the tokenizer would produce other ids."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)  # call settings the tokenizer keeps from its last call
        spec.pop("padding", None)
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    return h.hexdigest()


def _texts_digest(column: TextColumn) -> str:
    h = hashlib.sha256()
    for texts in (column.texts, column.pairs or []):
        for t in texts:
            h.update(b"\x02" if t is None else t.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        h.update(b"\x01")
    return h.hexdigest()


def cut_to_budget(column: TextColumn, max_length: int) -> TextColumn:
    """``column`` with every text cut to ``max_length`` × :data:`CHARS_PER_TOKEN` characters.

    A tokenizer reads a whole text before it truncates, so one 50 MB cell costs gigabytes and
    minutes; no token among the first ``max_length`` lies beyond that many characters, so the
    token ids stay the same. How many texts were cut is noted in the log (one line).
    """
    budget = max_length * CHARS_PER_TOKEN
    cut = 0

    def trim(text: str | None) -> str | None:
        nonlocal cut
        if text is None or len(text) <= budget:
            return text
        cut += 1
        return text[:budget]

    texts = [trim(t) for t in column.texts]
    pairs = [trim(p) for p in column.pairs] if column.pairs is not None else None
    if cut:
        log.info(f"data: cut {cut} text(s) longer than {budget:,} characters (data.max_length={max_length} x {CHARS_PER_TOKEN}) before tokenising")
    return TextColumn(texts, pairs)


def tokenize(column: TextColumn, tokenizer, max_length: int) -> TokenizedTexts:
    """Token ids of every row (truncated to ``max_length``), with segment ids if the tokenizer makes them.

    A row whose second text is None is tokenised as a single text. Texts are first cut to a
    character budget (:func:`cut_to_budget`), which bounds memory and time on huge cells.
    """
    column = cut_to_budget(column, max_length)
    want_types = "token_type_ids" in tokenizer.model_input_names
    rows: list[list[int]] = [[] for _ in range(len(column))]
    row_types: list[list[int]] = [[] for _ in range(len(column))]
    pairs = column.pairs or [None] * len(column)
    for has_pair in (False, True):
        index = [i for i, p in enumerate(pairs) if (p is not None) == has_pair]
        for start in range(0, len(index), _CHUNK):
            chunk = index[start : start + _CHUNK]
            texts = [column.texts[i] for i in chunk]
            second = [pairs[i] for i in chunk] if has_pair else None
            enc = tokenizer(texts, second, truncation=True, max_length=max_length, return_token_type_ids=want_types)
            for j, i in enumerate(chunk):
                rows[i] = enc["input_ids"][j]
                if want_types:
                    row_types[i] = enc["token_type_ids"][j]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    pad = tokenizer.pad_token_id
    if pad is None:  # decoders such as GPT-2 have no pad token; padded positions are masked anyway
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    ids = torch.tensor([t for r in rows for t in r], dtype=torch.int32)
    type_ids = torch.tensor([t for r in row_types for t in r], dtype=torch.int8) if want_types else None
    return TokenizedTexts(ids, offsets, type_ids, pad)


def tokenize_cached(column: TextColumn, tokenizer, max_length: int, cache_dir: str | None) -> TokenizedTexts:
    """:func:`tokenize`, reusing ``<cache_dir>/tokens-<hash>.safetensors`` when the same texts,
    tokenizer and ``max_length`` were tokenised before (no cache when ``cache_dir`` is None).

    The file is verified before use and rebuilt when it does not verify (see :mod:`peftlab.data.token_cache`).
    """
    if not cache_dir:
        return tokenize(column, tokenizer, max_length)
    key = hashlib.sha256(f"{_texts_digest(column)}|{tokenizer_fingerprint(tokenizer)}|{max_length}".encode()).hexdigest()
    return cached(cache_path(cache_dir, key), key, len(column), len(tokenizer), lambda: tokenize(column, tokenizer, max_length))
