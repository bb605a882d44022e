"""Bad input catalogue (started: config values, unknown options, checkpoints given to eval).

Each case runs the real command: exit status 2, the last stderr line is ``error: <key or file>:
...`` naming what is wrong, no traceback, and no file that existed before is changed (the log
tree, holding a finished run, is hashed before and after).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from peftlab.train import train

QUICK = ["callbacks=none", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """A log tree holding one finished run (what a careless command could overwrite)."""
    from conftest import compose_config

    root = tmp_path_factory.mktemp("logs")
    train(compose_config(QUICK, root / "train" / "runs" / "finished"))
    return root


@pytest.fixture(scope="module")
def bad_files(logs, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    last = next(logs.rglob("last.ckpt"))
    data = last.read_bytes()
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 3])
    (folder / "notes.ckpt").write_text("hello\n")
    torch.save([1, 2, 3], folder / "list.ckpt")
    return {p.stem: p for p in folder.iterdir()}


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


CASES = [
    ("train.py", ["strategy=prune_share", "strategy.pruning.final_sparsity=1.5"], "strategy.pruning.final_sparsity"),
    ("train.py", ["trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val"),
    ("train.py", ["strategy/weighting=nope"], "strategy/weighting"),
    ("train.py", ["strategy.clipping.max_norm=-1", "strategy/clipping=norm"], "strategy.clipping.max_norm"),
    ("eval.py", ["ckpt_path={missing}"], "ckpt_path"),
    ("eval.py", ["ckpt_path={truncated}"], "ckpt_path"),
    ("eval.py", ["ckpt_path={notes}"], "ckpt_path"),
    ("eval.py", ["ckpt_path={list}"], "ckpt_path"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, overrides, key", CASES, ids=[f"{s}:{o[-1]}" for s, o, _ in CASES])
def test_bad_input_is_one_line_and_changes_nothing(logs, bad_files, script, overrides, key):
    paths = {**{k: str(v) for k, v in bad_files.items()}, "missing": str(logs / "nope.ckpt")}
    args = [o.format(**paths) for o in overrides] + (QUICK if script == "train.py" else [])
    before = digest(logs)
    res = run_cli(script, *args, log_dir=logs)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {key}"), last
    assert "Traceback" not in res.stderr
    after = digest(logs)
    assert {k: after.get(k) for k in before} == before  # nothing that existed was changed
    assert not [k for k in after if k not in before and k.endswith(".ckpt")]  # and no checkpoint was written
