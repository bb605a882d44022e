"""Tokenisation of a table's texts with a Hugging Face tokenizer, cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from peftlab.data.text_inputs import TextColumn, TokenizedTexts
from peftlab.errors import ConfigError
from peftlab.packaged_assets import pretrained_path

_CHUNK = 4096  # texts per tokenizer call


def load_tokenizer(name_or_path: str, key: str = "data.tokenizer"):
    """``AutoTokenizer.from_pretrained`` of a hub id, a local directory or a packaged name (``minilm``)."""
    from transformers import AutoTokenizer

    path = pretrained_path(name_or_path, key)
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


def tokenize(column: TextColumn, tokenizer, max_length: int) -> TokenizedTexts:
    """Token ids of every row (truncated to ``max_length``), with segment ids if the tokenizer makes them.

    A row whose second text is None is tokenised as a single text.
    """
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
    """:func:`tokenize`, reusing ``<cache_dir>/tokens-<hash>.pt`` when the same texts, tokenizer and
    ``max_length`` were tokenised before (no cache when ``cache_dir`` is None)."""
    if not cache_dir:
        return tokenize(column, tokenizer, max_length)
    key = hashlib.sha256(f"{_texts_digest(column)}|{tokenizer_fingerprint(tokenizer)}|{max_length}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"tokens-{key}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return TokenizedTexts(saved["ids"], saved["offsets"], saved.get("type_ids"), int(saved["pad_id"]))
    tokens = tokenize(column, tokenizer, max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    payload = {"ids": tokens.ids, "offsets": tokens.offsets, "pad_id": torch.tensor(tokens.pad_id)}
    if tokens.type_ids is not None:
        payload["type_ids"] = tokens.type_ids
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    return tokens
