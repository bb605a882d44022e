"""Task specs and per-task metrics: every declared metric equals scikit-learn / scipy on fixed predictions."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error, r2_score

from peftlab.errors import ConfigError
from peftlab.models.task_metrics import TaskMetrics
from peftlab.tasks import parse_task_specs


def _logits(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, num_classes).float() * 3.0


def test_metrics_equal_sklearn_and_scipy():
    gen = torch.Generator().manual_seed(0)
    tasks = parse_task_specs(
        [
            {"name": "three", "num_classes": 3, "metric": "mcc", "metrics": ["acc", "f1", "mcc"]},
            {"name": "two", "num_classes": 2, "metric": "f1", "metrics": ["acc", "f1", "mcc"]},
            {"name": "reg", "num_classes": 0, "metric": "pearson", "metrics": ["pearson", "spearman", "r2", "mse"]},
        ]
    )
    metrics = TaskMetrics(tasks)
    y3, p3 = torch.randint(0, 3, (50,), generator=gen), torch.randint(0, 3, (50,), generator=gen)
    y2, p2 = torch.randint(0, 2, (40,), generator=gen), torch.randint(0, 2, (40,), generator=gen)
    yr = torch.randn(60, generator=gen)
    pr = yr + 0.7 * torch.randn(60, generator=gen)
    for lo, hi in ((0, 20), (20, 50)):  # two batches per task
        metrics.update(tasks[0], _logits(p3[lo:hi], 3), y3[lo:hi].float())
        metrics.update(tasks[1], _logits(p2[lo:hi], 2), y2[lo:hi].float())
    for lo, hi in ((0, 25), (25, 60)):
        metrics.update(tasks[2], pr[lo:hi, None], yr[lo:hi])
    got = metrics.compute()
    assert list(got["three"]) == ["mcc", "acc", "f1"]  # main metric first
    assert got["three"]["acc"] == pytest.approx(accuracy_score(y3, p3), abs=1e-6)
    assert got["three"]["f1"] == pytest.approx(f1_score(y3, p3, average="macro"), abs=1e-6)
    assert got["three"]["mcc"] == pytest.approx(matthews_corrcoef(y3, p3), abs=1e-5)
    assert got["two"]["f1"] == pytest.approx(f1_score(y2, p2), abs=1e-6)  # F1 of class 1 (GLUE's MRPC/QQP F1)
    assert got["two"]["mcc"] == pytest.approx(matthews_corrcoef(y2, p2), abs=1e-5)
    assert got["reg"]["pearson"] == pytest.approx(pearsonr(pr, yr).statistic, abs=1e-5)
    assert got["reg"]["spearman"] == pytest.approx(spearmanr(pr, yr).statistic, abs=1e-5)
    assert got["reg"]["r2"] == pytest.approx(r2_score(yr, pr), abs=1e-5)
    assert got["reg"]["mse"] == pytest.approx(mean_squared_error(yr, pr), abs=1e-5)
    assert metrics.score(got) == pytest.approx((got["three"]["mcc"] + got["two"]["f1"] + got["reg"]["pearson"]) / 3)


def test_a_task_without_samples_is_nan_and_silent():
    tasks = parse_task_specs([{"name": "a", "num_classes": 2}, {"name": "b", "num_classes": 0}])
    metrics = TaskMetrics(tasks)
    metrics.update(tasks[0], _logits(torch.tensor([0, 1, 1]), 2), torch.tensor([0.0, 1.0, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics' "compute called before update" would raise here
        got = metrics.compute()
    assert got["a"]["acc"] == pytest.approx(2 / 3)
    assert set(got["b"]) == {"r2", "mse"} and all(math.isnan(v) for v in got["b"].values())
    metrics.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(math.isnan(v) for d in metrics.compute().values() for v in d.values())


def test_task_spec_defaults_and_main_metric():
    cls, reg, only_main = parse_task_specs(
        [
            {"name": "c", "num_classes": 4},
            {"name": "r", "num_classes": 0},
            {"name": "s", "num_classes": 0, "metric": "spearman", "metrics": ["mse"]},
        ]
    )
    assert (cls.metric, cls.metrics, cls.label, cls.out_dim) == ("acc", ("acc", "f1"), "c", 4)
    assert (reg.metric, reg.metrics, reg.type, reg.out_dim) == ("r2", ("r2", "mse"), "regression", 1)
    assert only_main.metrics == ("spearman", "mse")


@pytest.mark.parametrize(
    "task, key, text",
    [
        ({"name": "a", "num_classes": 2, "metrics": ["pearson"]}, "data.tasks[0].metrics", "not available for classification"),
        ({"name": "a", "num_classes": 0, "metric": "mse"}, "data.tasks[0].metric", "higher-is-better"),
        ({"name": "a", "num_classes": 0, "metrics": "r2"}, "data.tasks[0].metrics", "list"),
        ({"name": "a", "num_classes": 2, "classes": 3}, "data.tasks[0]", "unknown field"),
    ],
)
def test_bad_task_specs_are_one_line_errors(task, key, text):
    with pytest.raises(ConfigError) as err:
        parse_task_specs([task])
    assert err.value.key == key and text in str(err.value) and "\n" not in str(err.value)


def test_task_spec_built_directly_gets_the_defaults_of_its_kind():
    from peftlab.tasks import TaskSpec

    assert TaskSpec("r", "r", 0).metrics == ("r2", "mse") and TaskSpec("r", "r", 0).metric == "r2"
    assert TaskSpec("c", "c", 3).metrics == ("acc", "f1")
    assert TaskSpec("c", "c", 2, metric="mcc").metrics == ("mcc", "acc", "f1")
