"""The token cache is verified on every read and cannot run code; huge texts are cut before tokenising."""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path

import pytest
import torch

from peftlab.data.text_inputs import TextColumn
from peftlab.data.token_cache import save_tokens
from peftlab.data.tokenize import CHARS_PER_TOKEN, tokenize, tokenize_cached
from text_helpers import sentence, tiny_tokenizer_dir

MAX_LENGTH = 16


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _column(offset: int = 0, n: int = 40) -> TextColumn:
    return TextColumn([sentence(i + offset, 2 + i % 7) for i in range(n)])


def _same(a, b) -> bool:
    return torch.equal(a.ids, b.ids) and torch.equal(a.offsets, b.offsets) and a.pad_id == b.pad_id


def _cache_file(cache: Path) -> Path:
    (path,) = cache.glob("tokens-*.safetensors")
    return path


class Marker:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _corrupt(kind: str, path: Path, cache: Path, tokenizer, marker: Path) -> None:
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "swapped":  # another source's valid cache file under this file's name
        other = cache / "other"
        tokenize_cached(_column(offset=500), tokenizer, MAX_LENGTH, str(other))
        path.write_bytes(_cache_file(other).read_bytes())
    elif kind == "out_of_range":  # consistent file, right key and digest, ids beyond the vocabulary
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            key = fh.metadata()["key"]
        bad = tokenize(_column(), tokenizer, MAX_LENGTH)
        bad.ids[3] = len(tokenizer) + 7
        save_tokens(path, bad, key)
    elif kind == "edited":  # one id changed in place: the digest no longer matches
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x01
        path.write_bytes(bytes(data))
    elif kind == "pickle":  # a crafted pickle that would create the marker file when unpickled
        path.write_bytes(pickle.dumps({"ids": Marker(str(marker))}))


@pytest.mark.parametrize("kind", ["truncated", "empty", "swapped", "out_of_range", "edited", "pickle"])
def test_a_bad_cache_file_is_rebuilt_with_a_note_and_never_executed(tmp_path, tokenizer, caplog, kind):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    column = _column()
    fresh = tokenize(column, tokenizer, MAX_LENGTH)
    assert _same(tokenize_cached(column, tokenizer, MAX_LENGTH, str(cache)), fresh)
    path = _cache_file(cache)
    _corrupt(kind, path, cache, tokenizer, marker)
    with caplog.at_level(logging.WARNING, logger="peftlab.data.token_cache"):
        again = tokenize_cached(column, tokenizer, MAX_LENGTH, str(cache))
    assert _same(again, fresh), "the tokens of this column, not the bad file's"
    notes = [r.getMessage() for r in caplog.records if "token cache" in r.getMessage()]
    assert len(notes) == 1 and str(path) in notes[0] and "rebuilt" in notes[0] and "\n" not in notes[0]
    assert not marker.exists(), "a cache file ran code"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="peftlab.data.token_cache"):  # the rebuilt file verifies
        assert _same(tokenize_cached(column, tokenizer, MAX_LENGTH, str(cache)), fresh)
    assert not [r for r in caplog.records if "token cache" in r.getMessage()]


def test_an_old_pickled_cache_beside_it_is_never_opened(tmp_path, tokenizer):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    cache.mkdir()
    for name in ("tokens-0.pt", "tokens-1.pkl"):  # what older versions wrote, crafted
        (cache / name).write_bytes(pickle.dumps(Marker(str(marker))))
    column = _column()
    assert _same(tokenize_cached(column, tokenizer, MAX_LENGTH, str(cache)), tokenize(column, tokenizer, MAX_LENGTH))
    assert not marker.exists()


def test_a_huge_text_is_cut_before_tokenising_with_the_same_tokens(tokenizer, caplog):
    huge = " ".join(sentence(i, 10) for i in range(100_000))[:5_000_000]  # one 5 MB cell
    column = TextColumn([huge, "good movie", huge[:100]], [None, None, None])
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="peftlab.data.tokenize"):
        tokens = tokenize(column, tokenizer, 64)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{elapsed:.1f} s: the whole 5 MB text was tokenised (about 10 s here)"
    # the uncut text's first 64 tokens (tokenising a 200,000-character prefix, 100x the budget, gives
    # them in a fraction of the ~10 s that the whole 5 MB takes)
    expected = tokenizer([huge[:200_000], "good movie", huge[:100]], truncation=True, max_length=64)["input_ids"]
    for row, ids in enumerate(expected):
        assert tokens.ids[tokens.offsets[row] : tokens.offsets[row + 1]].tolist() == ids
    notes = [r.getMessage() for r in caplog.records if "cut" in r.getMessage()]
    assert notes == [f"data: cut 1 text(s) longer than {64 * CHARS_PER_TOKEN:,} characters (data.max_length=64 x {CHARS_PER_TOKEN}) before tokenising"]
