"""scripts/bench_minilm_seeds.py: paired differences and their 95 % intervals are computed right."""

import argparse
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_minilm_seeds import METRICS, mean_ci, report  # noqa: E402


def test_mean_ci_is_the_student_t_interval():
    m, h = mean_ci([0.01, -0.02, 0.04])
    assert m == pytest.approx(0.01)
    assert h == pytest.approx(4.302652729911275 * 0.03 / math.sqrt(3))  # t(0.975, 2) × sd / √n
    assert math.isnan(mean_ci([0.5])[1])


def test_report_pairs_each_recipe_with_full_on_the_same_seed():
    acc, pearson = METRICS["sentiment acc"], METRICS["confidence pearson"]
    results = {
        "full": {1: {acc: 0.70, pearson: 0.3, "seconds": 100}, 2: {acc: 0.80, pearson: 0.3, "seconds": 110}},
        "lora_share": {1: {acc: 0.69, pearson: 0.2, "seconds": 90}, 2: {acc: 0.79, pearson: 0.2, "seconds": 96}},
        "task_lora": {1: {acc: 0.72, pearson: 0.3, "seconds": 95}, 2: {acc: 0.82, pearson: 0.3, "seconds": 97}},
    }
    args = argparse.Namespace(seeds=[1, 2], subset=400, epochs=2, lora_epochs=3, threads=1)
    text = report(results, args)
    # differences are exactly -0.01 and +0.02 on both seeds: zero spread, so a zero-width interval
    assert "| -0.010 [-0.010, -0.010] |" in text
    assert "| +0.020 [+0.020, +0.020] |" in text
    assert "task_lora − lora_share, sentiment acc, paired: +0.030 [+0.030, +0.030]." in text
    assert "seed 1: 0.700 / 0.690 / 0.720" in text
    # each recipe's epochs and mean fit + test time, so the compute budget is visible
    assert "| full | `strategy=share` | 2 | 105 | 0.750 ± 0.071 |" in text
    assert "| lora_share | `strategy=lora_share model.optimizer.lr=2e-3` | 3 | 93 |" in text
    assert "| task_lora | `strategy=task_lora model.optimizer.lr=2e-3` | 3 | 96 |" in text
    assert "--epochs 2 --lora-epochs 3" in text
