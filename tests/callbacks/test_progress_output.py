"""What a run prints: plain progress lines in a log file, a layer table without zero FLOPs, no loading bars."""

from __future__ import annotations

import sys

import pytest
from lightning.pytorch.callbacks import RichProgressBar

from peftlab.callbacks.log_progress import LogProgress, progress_for_output
from peftlab.runs.library_warnings import quiet_loading_bars
from peftlab.train import train


@pytest.mark.slow  # a short training run (~5 s)
def test_log_file_gets_plain_progress_lines_and_a_summary_without_flops(make_cfg, capfd):
    cfg = make_cfg(
        "trainer.max_epochs=2", "++trainer.limit_train_batches=6", "logger=csv",
        "callbacks=default", "callbacks.progress_bar.every_n_steps=3", "trainer.enable_progress_bar=true", "trainer.enable_model_summary=true",
    )  # fmt: skip
    train(cfg)
    out = capfd.readouterr().out  # captured: stdout is not a terminal, as in a log file
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    steps = [line for line in lines if " step " in line]
    assert [line.split("  ")[1] for line in steps] == ["step 3/12 (25%)", "step 6/12 (50%)", "step 9/12 (75%)", "step 12/12 (100%)"]
    assert all("it/s" in line and "ETA " in line for line in steps)
    assert "loss " in steps[-1]
    ends = [line for line in lines if " done in " in line]
    assert [line.split(" done")[0] for line in ends] == ["epoch 1/2", "epoch 2/2"]  # counted from 1
    assert all("val/score" in line for line in ends)
    assert "\r" not in out and "epoch 0/" not in out.lower()
    assert "Trainable params" in out and "FLOPs" not in out


def test_a_terminal_gets_the_rich_bar_and_a_file_gets_lines(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(progress_for_output(), RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    bar = progress_for_output(every_n_steps=7)
    assert isinstance(bar, LogProgress) and bar.every_n_steps == 7


def test_hugging_face_loading_bars_are_off_unless_asked_for(monkeypatch):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    try:
        quiet_loading_bars()
        assert not hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    finally:
        hf_logging.enable_progress_bar()
        enable_progress_bars()
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # the user asked for them
    quiet_loading_bars()
    assert hf_logging.is_progress_bar_enabled()
