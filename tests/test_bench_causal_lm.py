"""scripts/bench_causal_lm.py on a shrunken decoder: it prints every ratio against its goal, checks that
both steps (and both generators) agree, and leaves docs/benchmarks.md alone without --write."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_benchmark_prints_each_ratio_and_writes_nothing_without_write():
    doc = ROOT / "docs" / "benchmarks.md"
    before = hashlib.sha256(doc.read_bytes()).hexdigest()
    cmd = [sys.executable, "scripts/bench_causal_lm.py", "--layers", "1", "--seq", "32", "--batch", "2", "--rounds", "1", "--new-tokens", "4", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "x (goal" in line]
    assert len(rows) == 9, proc.stdout  # 7 comparisons + UPGrad and MGDA against torchjd
    for row in rows:
        ratio = float(re.search(r"\| ([0-9.]+)x \(goal", row).group(1))
        assert ratio > 0 and ("met)" in row)
    assert "(8 tokens)" in proc.stdout  # 2 prompts x 4 new tokens, the same from both generators
    assert hashlib.sha256(doc.read_bytes()).hexdigest() == before
