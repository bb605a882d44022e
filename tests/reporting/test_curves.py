"""curves.png: every run's training curves (train loss per task, validation metrics, learning rate) beside alpha.png."""

from __future__ import annotations

import pandas as pd
import pytest

from peftlab.reporting.curves_plot import curve_columns, plot_curves
from peftlab.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a short training run (~5 s)
def test_a_short_digits_run_writes_a_curves_png(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=2", "++trainer.limit_train_batches=6", "trainer.log_every_n_steps=2", "logger=csv")
    train(cfg)
    run_dir = tmp_path / "run0"
    png = run_dir / "curves.png"
    assert png.is_file() and png.stat().st_size > 10_000 and png.read_bytes()[:8] == PNG_MAGIC
    assert (run_dir / "alpha.png").is_file()  # beside it
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    panels = curve_columns(list(logged.columns))
    assert {"train/digit/loss", "train/parity/loss", "train/high/loss", "train/loss"} <= set(panels["train loss"])
    assert "val/score" in panels["validation"] and panels["learning rate"]
    assert all(logged[c].notna().sum() >= 2 for c in panels["train loss"] + ["val/score"])  # lines, not single points


def test_no_csv_log_no_plot(tmp_path):
    assert plot_curves(tmp_path) is None and not (tmp_path / "curves.png").exists()
