"""scripts/bench_llm_pruning.py: paired differences, recovery step counts and tables from known numbers."""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_llm_pruning import decoder_table, oneshot_table, paired, recover_table, steps_to_recover, val_curve  # noqa: E402

T_2 = 4.302652729911275  # Student t(0.975, 2 degrees of freedom)


def test_paired_is_in_points_with_the_student_t_interval():
    # differences 1, 2, 3 points: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3)
    h = T_2 / math.sqrt(3)
    assert paired([0.51, 0.52, 0.53], [0.50, 0.50, 0.50]) == f"+2.0 [{2 - h:+.1f}, {2 + h:+.1f}]"
    assert paired([0.48], [0.50]) == "-2.0"  # one value: no interval


def test_oneshot_table_pairs_by_seed_and_broadcasts_magnitude():
    acc, r = "sentiment acc", "confidence Pearson"
    results = {
        "50 %": {
            "magnitude": [{acc: 0.70, r: 0.30, "seconds": 2.0}],
            "sparsegpt": [{acc: 0.76, r: 0.35, "seconds": 50.0}, {acc: 0.78, r: 0.35, "seconds": 40.0}, {acc: 0.77, r: 0.35, "seconds": 60.0}],
        }
    }
    text = "\n".join(oneshot_table(results, {acc: 0.79, r: 0.36}, [0, 1, 2]))
    h = T_2 * 1.0 / math.sqrt(3)  # per-seed differences 6, 8, 7 points to magnitude: sd 1
    assert f"| 50 % | sparsegpt | 0.7700 | 0.7600 / 0.7800 / 0.7700 | +7.0 [{7 - h:+.1f}, {7 + h:+.1f}] | -2.0 [{-2 - h:+.1f}, {-2 + h:+.1f}] | 50.0 s |" in text
    assert "| 50 % | magnitude | 0.7000 | (no calibration data: one run) | — | -9.0 | 2.0 s |" in text
    assert "| 50 % | sparsegpt | 0.3500 | 0.3500 / 0.3500 / 0.3500 | +5.0 [+5.0, +5.0] | -1.0 [-1.0, -1.0] | 50.0 s |" in text
    assert "confidence Pearson, mean (dense 0.3600)" in text


def test_steps_to_recover_is_the_first_validation_within_one_point():
    rows = [{"step": "9", "val/sentiment/acc": ""}, {"step": "19", "val/sentiment/acc": "0.70"}, {"step": "39", "val/sentiment/acc": "0.745"}, {"step": "59", "val/sentiment/acc": "0.76"}]
    curve = val_curve(rows)
    assert curve == [(20, 0.70), (40, 0.745), (60, 0.76)]  # a row logged at step s follows s + 1 optimizer steps
    assert steps_to_recover(curve, 0.75) == 40  # 0.745 >= 0.75 - 0.01
    assert steps_to_recover(curve, 0.80) is None


def test_recover_and_decoder_tables_name_the_resolution_and_the_budget():
    args = argparse.Namespace(recover_steps=60, val_every=20)
    text = "\n".join(recover_table({"wanda": ([(20, 0.70), (40, 0.745)], 0.77), "magnitude": ([(20, 0.6)], 0.6)}, 0.75, args))
    assert "| wanda | 20: 0.7000, 40: 0.7450 | ≤ 40 (validated every 20) | 0.7700 |" in text
    assert "| magnitude | 20: 0.6000 | not within 60 | 0.6000 |" in text
    text = "\n".join(decoder_table({"sparsegpt": ({"reverse": 1.5, "add": 2.25}, 3.0)}, {"reverse": 1.25, "add": 2.0}))
    assert "reverse perplexity (dense 1.250) | add perplexity (dense 2.000)" in text
    assert "| sparsegpt | 1.500 | 2.250 | 3.0 s |" in text
