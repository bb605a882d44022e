"""The on-disk token cache: safetensors files (plain tensors, no code) that are verified on every read.

Each file ``<cache_dir>/tokens-<key>.safetensors`` holds one source's token ids and records, in
its metadata, the full cache key (a hash of the texts' bytes, the tokenizer and ``max_length``:
the identity of what was tokenised) and a SHA-256 digest of its tensors' bytes. A file that
cannot be read, belongs to other texts (a swapped file), fails its digest (truncated or edited)
or holds ids outside the tokenizer's vocabulary is rebuilt, with a one-line note in the log.
safetensors is used because it cannot run code when read (a pickle can); older ``.pt`` caches are
never opened.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from peftlab.data.text_inputs import TokenizedTexts

log = logging.getLogger(__name__)

FORMAT = "peftlab-tokens-1"  # bump when the layout changes: older files then fail verification


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` (in name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """Where the tokens of cache ``key`` live."""
    return Path(cache_dir) / f"tokens-{key[:24]}.safetensors"


def save_tokens(path: Path, tokens: TokenizedTexts, key: str) -> None:
    """Write ``tokens`` atomically (a concurrent reader sees the whole file or none)."""
    from safetensors.torch import save_file

    tensors = {"ids": tokens.ids.contiguous(), "offsets": tokens.offsets.contiguous()}
    if tokens.type_ids is not None:
        tensors["type_ids"] = tokens.type_ids.contiguous()
    metadata = {"format": FORMAT, "key": key, "pad_id": str(tokens.pad_id), "digest": tensors_digest(tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_tokens(path: Path, key: str, rows: int, vocab_size: int) -> tuple[TokenizedTexts | None, str]:
    """``(tokens, "")`` when ``path`` holds verified tokens of cache ``key``, else ``(None, why not)``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        return None, f"unreadable ({(str(exc).splitlines() or [type(exc).__name__])[0]})"
    if metadata.get("format") != FORMAT or metadata.get("key") != key:
        return None, "it belongs to other texts or settings"
    if set(tensors) - {"ids", "offsets", "type_ids"} or not {"ids", "offsets"} <= set(tensors) or metadata.get("digest") != tensors_digest(tensors):
        return None, "its contents do not match their digest"
    ids, offsets, type_ids = tensors["ids"], tensors["offsets"], tensors.get("type_ids")
    consistent = ids.dim() == 1 and offsets.dim() == 1 and len(offsets) == rows + 1 and int(offsets[0]) == 0 and int(offsets[-1]) == len(ids)
    consistent = consistent and bool((offsets[1:] >= offsets[:-1]).all()) and (type_ids is None or type_ids.shape == ids.shape)
    if not consistent:
        return None, "its offsets do not fit its rows"
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        return None, f"it holds token ids outside the tokenizer's vocabulary of {vocab_size}"
    try:
        pad_id = int(metadata["pad_id"])
    except (KeyError, ValueError):
        return None, "it has no pad id"
    return TokenizedTexts(ids, offsets, type_ids, pad_id), ""


def cached(path: Path, key: str, rows: int, vocab_size: int, build) -> TokenizedTexts:
    """The verified tokens in ``path``, or ``build()`` written there (noting why a file was rebuilt)."""
    if path.is_file():
        tokens, why = load_tokens(path, key, rows, vocab_size)
        if tokens is not None:
            return tokens
        log.warning(f"data: token cache {path} rebuilt: {why}")
    tokens = build()
    save_tokens(path, tokens, key)
    return tokens
