"""docs/benchmarks.md is shared by several benchmark scripts: each rewrites only its own section."""

from __future__ import annotations

import re
from pathlib import Path

from peftlab.checkpoints.atomic_files import write_text_atomic


def write_benchmark_section(section: str, text: str, path: Path) -> None:
    """Replace the text between ``<!-- BEGIN section -->`` and ``<!-- END section -->`` in ``path``."""
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise ValueError(f"{path} has no {begin} ... {end} markers")
    pattern = re.escape(begin) + ".*?" + re.escape(end)
    write_text_atomic(path, re.sub(pattern, lambda _: f"{begin}\n{text}\n{end}", doc, flags=re.S))
