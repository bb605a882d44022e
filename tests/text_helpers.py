"""Helpers for text-data tests: a tiny WordPiece tokenizer saved with save_pretrained, small data files."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = "good great fine bad awful poor okay movie film plot actor the a is was very not and".split()


def tiny_tokenizer_dir(root: Path) -> Path:
    """A BERT-style fast tokenizer over a 30-word vocabulary, written with ``save_pretrained``."""
    from transformers import BertTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    out = root / "tokenizer"
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(out)
    return out


def sentence(i: int, n_words: int) -> str:
    """A deterministic sentence of ``n_words`` vocabulary words."""
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n_words))


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """A CSV file (values containing commas are quoted)."""

    def cell(v):
        s = str(v)
        return f'"{s}"' if "," in s else s

    path.write_text(",".join(header) + "\n" + "".join(",".join(cell(v) for v in r) + "\n" for r in rows))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """A JSON-lines file."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
