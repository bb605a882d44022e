"""``per_task_backward`` as a plain function (no LightningModule): what it writes into ``.grad``, and the
one hook a new gradient method needs (``combine_gradients`` on the raw rows)."""

from __future__ import annotations

import torch
from torch import nn

from peftlab.clipping import Clipping, NoClipping, PerTaskClipping
from peftlab.models.per_task_backward import per_task_backward
from peftlab.weighting import EqualWeighting, GradientWeighting, PCGradWeighting, Weighting

TASKS = ["a", "b"]


def tiny_model():
    """A shared linear layer and two heads, with one batch's per-task losses."""
    torch.manual_seed(0)
    shared, heads = nn.Linear(4, 3), nn.ModuleDict({t: nn.Linear(3, 1) for t in TASKS})
    x = torch.randn(8, 4)
    features = shared(x)
    losses = {t: heads[t](features).pow(2).mean() * (k + 1) for k, t in enumerate(TASKS)}
    return shared, heads, features, losses


def reference_grads(losses, params):
    """Each task's gradient of ``params`` (flat), by plain autograd."""
    return [torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)]) for loss in losses.values()]


def written_grad(params):
    return torch.cat([p.grad.reshape(-1) for p in params])


def test_loss_weighting_writes_the_sum_of_task_gradients():
    shared, heads, _, losses = tiny_model()
    weighting = EqualWeighting()
    weighting.setup(TASKS)
    ga, gb = reference_grads(losses, list(shared.parameters()))
    result = per_task_backward(losses, list(shared.parameters()), list(heads.parameters()), weighting)
    assert not result.skipped and result.non_finite_tasks == []
    assert torch.allclose(written_grad(list(shared.parameters())), ga + gb, atol=1e-6)
    assert torch.allclose(result.objective, losses["a"] + losses["b"])


def test_a_raw_rows_method_needs_only_combine_gradients():
    """A GradDrop-like method: keeps the first task's row only; heads still get their own gradient."""

    class FirstRowOnly(GradientWeighting):
        def combine_gradients(self, rows, present=None, per_rank=False):
            return rows[0].clone()

    shared, heads, _, losses = tiny_model()
    weighting = FirstRowOnly()
    weighting.setup(TASKS)
    ga, _ = reference_grads(losses, list(shared.parameters()))
    head_b = reference_grads({"b": losses["b"]}, list(heads["b"].parameters()))[0]
    per_task_backward(losses, list(shared.parameters()), list(heads.parameters()), weighting, accumulation=2)
    assert torch.allclose(written_grad(list(shared.parameters())), ga / 2, atol=1e-6)
    assert torch.allclose(written_grad(list(heads["b"].parameters())), head_b / 2, atol=1e-6)


def test_representation_mode_backpropagates_the_combined_feature_gradient():
    shared, heads, features, losses = tiny_model()
    weighting = PCGradWeighting(mode="representation")
    weighting.setup(TASKS)
    assert weighting.on_representation
    per_task_backward(losses, list(shared.parameters()), list(heads.parameters()), weighting, features=features)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in shared.parameters())


def test_non_finite_rows_are_reported_and_nothing_is_written():
    shared, heads, _, losses = tiny_model()
    losses["b"] = losses["b"] * float("inf")
    weighting = PCGradWeighting()
    weighting.setup(TASKS)
    result = per_task_backward(losses, list(shared.parameters()), list(heads.parameters()), weighting)
    assert result.skipped and result.non_finite_tasks == ["b"]
    assert all(p.grad is None for p in shared.parameters())


def test_per_task_clipping_is_applied_to_each_row():
    shared, heads, _, losses = tiny_model()
    weighting = PCGradWeighting()
    weighting.setup(TASKS)
    clipping = PerTaskClipping(max_norm=1e-3)
    per_task_backward(losses, list(shared.parameters()), list(heads.parameters()), weighting, clip_rows=clipping.clip_rows)
    assert float(written_grad(list(shared.parameters())).norm()) <= 2e-3 + 1e-6


def test_capability_flags_are_declared_on_the_base_classes():
    assert (Weighting.needs_task_gradients, Weighting.uses_shared, Weighting.mode) == (False, False, "params")
    assert GradientWeighting.needs_task_gradients and GradientWeighting.MODES == ("params", "representation")
    assert (Clipping.per_task, Clipping.max_bad_steps) == (False, 5) and NoClipping().max_bad_steps == 5
    assert PerTaskClipping.per_task and not EqualWeighting().on_representation
