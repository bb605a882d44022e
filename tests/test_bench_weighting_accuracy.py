"""scripts/bench_weighting_accuracy.py: the table pairs each method with equal weighting on the same seed
and names every method more than 1 point below it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_weighting_accuracy import METHODS, table  # noqa: E402


def run(score: float, digit: float = 0.9) -> dict:
    return {"status": "completed", "score": score, "digit": digit, "seconds": 10.0}


def test_every_weighting_config_is_benchmarked():
    assert {"equal", "nash_mtl", "excess_mtl", "cr_mogm", "modo", "sdmgrad", "pcgrad"} <= set(METHODS)


def test_table_pairs_seeds_and_explains_the_methods_below_equal():
    results = {
        "equal/0": run(0.98),
        "equal/1": run(0.96),
        "pcgrad/0": run(0.99),
        "pcgrad/1": run(0.95),  # paired: +1 and -1 point: mean 0
        "pcd/0": run(0.96),
        "pcd/1": run(0.94),  # -2 points on both seeds
        "modo/0": run(0.90),
        "modo/1": {"status": "failed", "error": "boom", "seconds": 1.0},
        "sdmgrad/0": {"status": "failed", "error": "error: strategy.weighting.lr: bad", "seconds": 1.0},
    }
    text = table(results, ["equal", "pcgrad", "pcd", "modo", "sdmgrad", "krum"], [0, 1])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines() if line.startswith("| `")}
    assert rows["`equal`"][:4] == ["97.00 ± 1.41", "90.00 ± 0.00", "+0.00", "2"]
    assert rows["`pcgrad`"][2] == "+0.00" and rows["`pcd`"][2] == "-2.00"
    assert rows["`modo`"][2:4] == ["-8.00", "1"]  # only the completed seed counts
    assert rows["`sdmgrad`"][0] == "failed: error: strategy.weighting.lr: bad" and rows["`krum`"][0] == "not run"
    below = text.split("More than 1 point below equal weighting:")[1]
    assert "`pcd` (-2.00): PCD follows the primary task" in below and "`modo` (-8.00): no reason recorded yet." in below
