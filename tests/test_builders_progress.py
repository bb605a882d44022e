"""``trainer.enable_progress_bar=false`` wins over the default progress callback (Lightning refuses the pair)."""

from __future__ import annotations

from lightning.pytorch.callbacks import ProgressBar

from peftlab.builders import build_callbacks, build_trainer


def test_progress_bar_off_drops_the_progress_callback(make_cfg):
    cfg = make_cfg("trainer.enable_progress_bar=false", fast=False)
    callbacks = build_callbacks(cfg)
    assert any(isinstance(c, ProgressBar) for c in callbacks)  # the default callbacks bring one
    trainer = build_trainer(cfg, callbacks, [])
    assert trainer.progress_bar_callback is None
    assert not any(isinstance(c, ProgressBar) for c in trainer.callbacks)


def test_progress_bar_on_keeps_it(make_cfg):
    cfg = make_cfg(fast=False)
    trainer = build_trainer(cfg, build_callbacks(cfg), [])
    assert isinstance(trainer.progress_bar_callback, ProgressBar)
