"""Checkpoints and reports are written atomically; a missing, truncated or foreign checkpoint given
to eval, export or resume is one clear line naming ckpt_path (no traceback, nothing written)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import ROOT, compose_config, run_cli
from peftlab.builders import build_datamodule, build_model
from peftlab.checkpoints.atomic_checkpoint_io import AtomicCheckpointIO
from peftlab.checkpoints.atomic_files import atomic_path, write_text_atomic
from peftlab.checkpoints.safe_loading import load_checkpoint_safely
from peftlab.checkpoints.stored_config import CHECKPOINT_KEY
from peftlab.errors import ConfigError
from peftlab.train import train

RUN = ["callbacks=none", "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One short training run (its metrics.json contents; last.ckpt under run_dir/checkpoints)."""
    out = tmp_path_factory.mktemp("run")
    return train(compose_config(RUN, out))


def last_ckpt(run) -> Path:
    return Path(run["run_dir"]) / "checkpoints" / "last.ckpt"


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def bad_checkpoints(run, tmp_path) -> dict[str, Path]:
    """A truncated copy of a real checkpoint, a torch file that is not a checkpoint, a text file,
    and a real checkpoint whose stored config describes another model."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    data = last_ckpt(run).read_bytes()
    truncated = folder / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    foreign = folder / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = folder / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    other = folder / "other_model.ckpt"
    ckpt = torch.load(last_ckpt(run), weights_only=True)
    ckpt[CHECKPOINT_KEY]["model"]["backbone"]["hidden_dims"] = [32]
    torch.save(ckpt, other)
    return {"truncated": truncated, "foreign": foreign, "text": text, "other_model": other, "missing": folder / "nope.ckpt"}


def test_our_checkpoints_load_with_weights_only(run):
    ckpt = load_checkpoint_safely(last_ckpt(run))
    assert ckpt["global_step"] == 4 and isinstance(ckpt[CHECKPOINT_KEY], dict)
    assert all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values())


@pytest.mark.parametrize(
    "kind, says",
    [
        ("truncated", "not a readable checkpoint"),
        ("text", "not a readable checkpoint"),
        ("foreign", "not a Lightning checkpoint"),
        ("missing", "no such file"),
    ],
)
def test_load_checkpoint_safely_is_one_config_error(bad_checkpoints, kind, says):
    with pytest.raises(ConfigError) as err:
        load_checkpoint_safely(bad_checkpoints[kind])
    assert err.value.key == "ckpt_path"
    message = str(err.value)
    assert message.startswith(f"ckpt_path: {bad_checkpoints[kind]}: {says}") and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "foreign", "other_model"])
def test_eval_and_export_refuse_a_bad_checkpoint_in_one_line(bad_checkpoints, kind, tmp_path):
    path = bad_checkpoints[kind]
    logs = tmp_path / "logs"
    before = digest(path.parent)
    export = [sys.executable, str(ROOT / "scripts" / "export.py"), f"ckpt_path={path}", f"out={tmp_path / 'model.pt'}"]
    for script in ("eval.py", "scripts/export.py"):
        if script == "eval.py":
            res = run_cli(script, f"ckpt_path={path}", log_dir=logs)
        else:
            res = subprocess.run(export, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, (script, res.stderr[-2000:])
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: ckpt_path: {path}: "), (script, last)
        assert "Traceback" not in res.stderr, script
    assert not (tmp_path / "model.pt").exists()
    assert not list(logs.rglob("*.ckpt"))
    assert digest(path.parent) == before  # nothing next to the checkpoint was changed
    if kind == "other_model":
        assert "holds a different model than the configured one" in last


def test_resume_from_a_truncated_checkpoint_is_a_config_error(bad_checkpoints, tmp_path):
    """Through Lightning's own resume (trainer.fit(ckpt_path=...)) with the AtomicCheckpointIO plugin."""
    cfg = compose_config(RUN, tmp_path)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(ConfigError, match=r"^ckpt_path: .*truncated\.ckpt: not a readable checkpoint"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(bad_checkpoints["truncated"]))


def test_atomic_checkpoint_io_writes_a_loadable_checkpoint_and_no_temp_file(run, tmp_path):
    ckpt = torch.load(last_ckpt(run), weights_only=True)
    target = tmp_path / "checkpoints" / "copy.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(ckpt, target)
    loaded = io.load_checkpoint(target)
    assert loaded["global_step"] == ckpt["global_step"]
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in ckpt["state_dict"].items())
    assert [p.name for p in target.parent.iterdir()] == ["copy.ckpt"]


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_text_atomic(target, '{"status": "completed"}\n')
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"stat')
            raise RuntimeError("killed mid-write")
    assert target.read_text() == '{"status": "completed"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


SAVER = """
import sys, torch
from peftlab.checkpoints.atomic_checkpoint_io import AtomicCheckpointIO
AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.randn(40_000_000)}, "global_step": 8, "pytorch-lightning_version": "2.5.0"}, sys.argv[1])
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    """A real process killed (SIGKILL) while a 160 MB checkpoint is being written."""
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.arange(5.0)}, "global_step": 7, "pytorch-lightning_version": "2.5.0"}, target)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], cwd=ROOT, env={**os.environ})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # wait until the temp file is half written
            if any(p.name.endswith(".tmp") and p.stat().st_size > 50_000_000 for p in tmp_path.iterdir()):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    # the previous checkpoint, whole (or, if the write won the race with the kill, the new one, whole)
    step = load_checkpoint_safely(target)["global_step"]
    assert step == 7 and hashlib.sha256(target.read_bytes()).hexdigest() == before or step == 8
    assert proc.returncode == -signal.SIGKILL  # it was killed, not finished


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp makes private files (0600); results written atomically are as readable as plain files."""
    from peftlab.checkpoints.atomic_files import write_text_atomic

    old = os.umask(0o022)  # (under umask 077 a plain file is 0600 too: the test could not fail)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        atomic = write_text_atomic(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(old)
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
