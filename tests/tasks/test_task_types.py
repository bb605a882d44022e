"""Task types: each kind owns its head, loss, metrics and labels; ``data.tasks[i].type`` picks it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassMatthewsCorrCoef
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from peftlab.data import LabelledTable, MultiTaskDataModule
from peftlab.errors import ConfigError
from peftlab.models import MLPBackbone, MultiTaskModule, TaskHeads
from peftlab.models.task_metrics import TaskMetrics
from peftlab.tasks import ClassificationTask, RegressionTask, TaskSpec, get_task_type, parse_task_specs, task_type_names


def _tasks():
    return parse_task_specs(
        [
            {"name": "c", "type": "classification", "num_classes": 3, "metrics": ["acc", "mcc"]},
            {"name": "b", "num_classes": 2, "metric": "f1"},
            {"name": "r", "type": "regression", "metric": "pearson", "metrics": ["spearman", "mse"]},
        ]
    )


def test_the_kinds_are_registered_and_inferred_as_before():
    assert set(task_type_names()) == {"classification", "regression", "causal_lm"}
    c, b, r = _tasks()
    assert isinstance(c.task_type, ClassificationTask) and isinstance(r.task_type, RegressionTask)
    assert b.type == "classification" and b.task_type is get_task_type("classification")
    assert parse_task_specs([{"name": "x", "num_classes": 0}])[0].type == "regression"  # no type: inferred
    assert TaskSpec("y", "y", 0).type == "regression" and TaskSpec("z", "z", 4).type == "classification"


def test_heads_have_the_width_of_their_kind():
    tasks = _tasks()
    heads = TaskHeads(tasks, in_dim=5)
    out = heads({t.name: torch.randn(7, 5) for t in tasks})
    assert {k: tuple(v.shape) for k, v in out.items()} == {"c": (7, 3), "b": (7, 2), "r": (7, 1)}
    assert [t.out_dim for t in tasks] == [3, 2, 1]


def test_each_loss_is_the_hand_computed_torch_loss():
    gen = torch.Generator().manual_seed(0)
    logits, classes = torch.randn(6, 3, generator=gen), torch.tensor([0.0, 2.0, 1.0, 1.0, 0.0, 2.0])
    got = get_task_type("classification").loss(logits.half(), classes)
    want = -torch.log_softmax(logits.half().float(), -1)[torch.arange(6), classes.long()].mean()
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-6)
    pred, value = torch.randn(6, 1, generator=gen), torch.randn(6, generator=gen)
    got = get_task_type("regression").loss(pred, value)
    assert got.dtype == torch.float32 and torch.allclose(got, ((pred[:, 0] - value) ** 2).mean())


def test_module_losses_ask_the_task_type():
    tasks = _tasks()
    model = MultiTaskModule(lambda: MLPBackbone(input_shape=[4], hidden_dims=(8,)), tasks)
    x, mask = torch.randn(5, 4), torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    y = torch.tensor([[0, 1, 0.5], [2, 0, -1.0], [0, 1, 0], [1, 0, 2.0], [0, 0, 0.25]])
    batch = {"inputs": x, "y": y, "task_mask": mask}
    out = model(x)
    losses = model.task_losses(out, batch)
    assert torch.allclose(losses["c"], F.cross_entropy(out["c"][mask[:, 0]], y[mask[:, 0], 0].long()))
    assert torch.allclose(losses["b"], F.cross_entropy(out["b"][mask[:, 1]], y[mask[:, 1], 1].long()))
    assert torch.allclose(losses["r"], F.mse_loss(out["r"][mask[:, 2], 0], y[mask[:, 2], 2]))


def test_metrics_match_torchmetrics_on_a_small_batch():
    gen = torch.Generator().manual_seed(1)
    c, b, r = tasks = _tasks()
    metrics = TaskMetrics(tasks)
    lc, yc = torch.randn(20, 3, generator=gen), torch.randint(0, 3, (20,), generator=gen).float()
    lb, yb = torch.randn(20, 2, generator=gen), torch.randint(0, 2, (20,), generator=gen).float()
    pr, yr = torch.randn(20, 1, generator=gen), torch.randn(20, generator=gen)
    metrics.update(c, lc, yc)
    metrics.update(b, lb, yb)
    metrics.update(r, pr, yr)
    got = metrics.compute()
    assert got["c"]["acc"] == pytest.approx(float(MulticlassAccuracy(3, average="micro")(lc.argmax(-1), yc.long())))
    assert got["c"]["mcc"] == pytest.approx(float(MulticlassMatthewsCorrCoef(3)(lc.argmax(-1), yc.long())))
    assert got["b"]["f1"] == pytest.approx(float(BinaryF1Score()(lb.argmax(-1), yb.long())))
    assert got["r"]["pearson"] == pytest.approx(float(PearsonCorrCoef()(pr[:, 0], yr)))
    assert got["r"]["spearman"] == pytest.approx(float(SpearmanCorrCoef()(pr[:, 0], yr)))
    assert got["r"]["mse"] == pytest.approx(float(MeanSquaredError()(pr[:, 0], yr)))
    assert list(got["r"]) == ["pearson", "spearman", "mse"]


def test_an_unknown_type_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as err:
        parse_task_specs([{"name": "a"}, {"name": "b", "type": "ranking"}])
    text = str(err.value)
    assert err.value.key == "data.tasks[1].type" and "\n" not in text
    assert "'ranking'" in text and "classification, regression" in text


@pytest.mark.parametrize(
    "task, key, text",
    [
        ({"name": "a", "type": "regression", "num_classes": 3}, "data.tasks[0].num_classes", "no classes"),
        ({"name": "a", "type": "classification", "num_classes": 0}, "data.tasks[0].num_classes", "integer >= 2"),
        ({"name": "a", "type": "regression", "metrics": ["acc"]}, "data.tasks[0].metrics", "not available for regression"),
        ({"name": "a", "type": "classification", "metric": "r2"}, "data.tasks[0].metric", "higher-is-better metric for classification"),
    ],
)
def test_fields_that_do_not_fit_the_type_are_one_line_errors(task, key, text):
    with pytest.raises(ConfigError) as err:
        parse_task_specs([task])
    assert err.value.key == key and text in str(err.value) and "\n" not in str(err.value)


class _Source:
    """60 rows of 3 features, a class label and a real-valued label."""

    def load(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(60, 3, generator=gen)
        return LabelledTable(x, {"cls": (x[:, 0] > 0).float(), "val": x.sum(1)})


def test_a_regression_task_declared_by_type_without_num_classes_works():
    tasks = [{"name": "c", "label": "cls", "num_classes": 2}, {"name": "v", "label": "val", "type": "regression", "metric": "pearson"}]
    spec = parse_task_specs(tasks)[1]
    assert (spec.type, spec.num_classes, spec.out_dim, spec.metrics) == ("regression", 0, 1, ("pearson", "r2", "mse"))
    dm = MultiTaskDataModule(source=_Source(), tasks=tasks, batch_size=8, input_shape=[3])
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert not bool((batch["y"][:, 1] == batch["y"][:, 1].round()).all())  # real numbers, not class ids
    model = MultiTaskModule(lambda: MLPBackbone(input_shape=[3], hidden_dims=(8,)), tasks)
    losses = model.task_losses(model(batch["inputs"]), batch)
    assert set(losses) == {"c", "v"} and all(bool(torch.isfinite(v)) for v in losses.values())
    model.validation_step(next(iter(dm.val_dataloader())), 0)
    assert set(model.val_metrics.compute()["v"]) == {"pearson", "r2", "mse"}


def test_classification_labels_are_checked_by_the_type():
    spec = TaskSpec("c", "c", 3)
    assert spec.task_type.check_labels(torch.tensor([0.0, float("nan"), 2.0]), spec) is None
    assert spec.task_type.check_labels(torch.tensor([0.0, 1.5, 3.0]), spec) == (1, "num_classes", "integers in [0, 3)")
    assert TaskSpec("r", "r", 0).task_type.check_labels(torch.tensor([0.5, -7.0]), TaskSpec("r", "r", 0)) is None
    assert spec.task_type.stratify and not TaskSpec("r", "r", 0).task_type.stratify
