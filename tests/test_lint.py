"""The code passes the linter and the formatter configured in pyproject.toml (``make lint``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = ["src", "tests", "scripts", "train.py", "eval.py", "predict.py"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["ruff-check", "ruff-format"])
def test_ruff_passes(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, *LINTED], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
