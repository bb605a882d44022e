"""The batched per-task backward (``TaskJacobian`` inside ``per_task_backward``) writes the same ``.grad``
as the straightforward reference: one ``autograd.grad`` per task into flat rows, then the method's
``combine_gradients`` on them (heads: the sum of their rows), for Gram-only and raw-row methods, both
modes, a grad scale, accumulation onto an existing ``.grad``, per-task clipping and a subset of tasks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from peftlab.clipping import PerTaskClipping
from peftlab.models.per_task_backward import per_task_backward
from peftlab.models.task_jacobian import TaskJacobian
from peftlab.weighting import (
    CAGradWeighting,
    EqualWeighting,
    GradDropWeighting,
    IMTLWeighting,
    MGDAWeighting,
    PCGradWeighting,
    TrimmedMeanWeighting,
    UPGradWeighting,
)

TASKS = ["a", "b", "c"]


class Model(nn.Module):
    """Embedding → linear → tanh shared body (an embedding's dense backward and a matmul under vmap), three heads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.lin = nn.Embedding(11, 6), nn.Linear(6, 5)
        self.unused = nn.Linear(2, 2)  # shared but reached by no loss: its rows are zeros
        self.heads = nn.ModuleDict({t: nn.Linear(5, 1) for t in TASKS})

    def forward(self, tasks=TASKS):
        """Features and per-task losses (task c's loss 10× larger: rows of very different norms)."""
        x = torch.randint(0, 11, (4, 3), generator=torch.Generator().manual_seed(1))
        features = torch.tanh(self.lin(self.emb(x).mean(dim=1)))
        scale = {"a": 1.0, "b": -2.0, "c": 10.0}
        return features, {t: (self.heads[t](features).squeeze(-1) - scale[t]).pow(2).mean() * scale[t] ** 2 for t in tasks}

    def shared(self):
        return list(self.emb.parameters()) + list(self.lin.parameters()) + list(self.unused.parameters())


def flat(grads, targets):
    return torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1) for g, t in zip(grads, targets)])


def reference(model, features, losses, weighting, representation, scale, accumulation, clip):
    """The old path: T separate ``autograd.grad`` calls into flat rows, then ``combine_gradients``."""
    shared, rest = model.shared(), list(model.heads.parameters())
    targets = ([features] if representation else shared) + rest
    rows = torch.stack([flat(torch.autograd.grad(loss * scale, targets, retain_graph=True, allow_unused=True), targets) for loss in losses.values()])
    if clip is not None:
        clip.clip_rows(rows, scale)
    n = features.numel() if representation else sum(p.numel() for p in shared)
    present = [TASKS.index(t) for t in losses]
    d_shared = weighting.combine_gradients(rows[:, :n] / scale, present, per_rank=representation) * scale  # the method sees unscaled rows
    if representation:
        d_shared = flat(torch.autograd.grad(features, shared, grad_outputs=d_shared.view_as(features), retain_graph=True, allow_unused=True), shared)
    return d_shared / accumulation, rows[:, n:].sum(dim=0) / accumulation


METHODS = {
    "pcgrad": PCGradWeighting,
    "mgda": MGDAWeighting,
    "imtl": IMTLWeighting,
    "cagrad": CAGradWeighting,
    "upgrad": UPGradWeighting,
    "graddrop": GradDropWeighting,  # raw rows (seeded by the step: the copy draws the same)
    "trimmed_mean": TrimmedMeanWeighting,  # raw rows, coordinate-wise
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(
    "representation,scale,accumulation,clip,tasks",
    [(False, 1.0, 1, False, TASKS), (False, 8.0, 2, False, TASKS), (True, 1.0, 2, False, TASKS), (False, 1.0, 1, True, TASKS), (False, 1.0, 1, False, ["a", "c"])],
)
def test_batched_backward_writes_the_reference_grad(method, representation, scale, accumulation, clip, tasks):
    if method == "trimmed_mean" and len(tasks) < 3:
        pytest.skip("trimming one of two rows from each side leaves nothing")
    model = Model()
    weighting = METHODS[method](mode="representation" if representation else "params")
    weighting.setup(TASKS)
    clipping = PerTaskClipping(max_norm=0.5) if clip else None
    features, losses = model(tasks)
    want_shared, want_rest = reference(model, features, losses, copy.deepcopy(weighting), representation, scale, accumulation, clipping)
    before = [torch.full_like(p, 0.25) for p in model.parameters()]  # an earlier micro-batch's gradient
    for p, g in zip(model.parameters(), before):
        p.grad = g.clone()
    per_task_backward(
        losses,
        model.shared(),
        list(model.heads.parameters()),
        weighting,
        features=features if representation else None,
        grad_scale=scale,
        clip_rows=clipping.clip_rows if clipping else None,
        accumulation=accumulation,
    )
    got_shared = torch.cat([(p.grad - 0.25).reshape(-1) for p in model.shared()])
    got_rest = torch.cat([(p.grad - 0.25).reshape(-1) for p in model.heads.parameters()])
    assert torch.allclose(got_shared, want_shared, rtol=1e-5, atol=1e-6 * float(want_shared.abs().max()))
    assert torch.allclose(got_rest, want_rest, rtol=1e-5, atol=1e-6)
    assert float(want_shared.abs().max()) > 0  # the comparison is not between zeros


def test_gram_only_methods_take_the_block_path_and_raw_row_methods_do_not():
    assert PCGradWeighting().combines_from_gram and UPGradWeighting().combines_from_gram and MGDAWeighting().combines_from_gram
    assert not GradDropWeighting().combines_from_gram and not TrimmedMeanWeighting().combines_from_gram
    assert not EqualWeighting().combines_from_gram


def test_task_jacobian_gram_and_rows_match_the_flat_matrix():
    model = Model()
    features, losses = model()
    targets = model.shared()
    want = torch.stack([flat(torch.autograd.grad(loss, targets, retain_graph=True, allow_unused=True), targets) for loss in losses.values()])
    jac = TaskJacobian.of(list(losses.values()), targets)
    assert jac.blocks[-1] is None  # the unused layer
    assert torch.allclose(jac.gram(len(targets)), (want.double() @ want.double().T), rtol=1e-5)
    assert jac.finite_rows() == [True, True, True]
    rows = jac.to_rows()
    assert rows.shape == (3, sum(t.numel() for t in targets)) and torch.allclose(rows, want, rtol=1e-5, atol=1e-7)
    assert all(b is None for b in jac.blocks)  # released while copied


def test_finite_rows_from_the_gram_diagonal_match_the_entry_by_entry_check():
    targets = [torch.zeros(4, 5), torch.zeros(6), torch.zeros(2)]  # two shared targets (the Gram's), one head

    def jacobian(*edits):
        blocks = [torch.randn(3, *t.shape, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(targets)]
        for block, index, value in edits:
            blocks[block][index] = value
        return TaskJacobian(blocks, targets, 3)

    for edits, want in [
        ((), [True, True, True]),
        (((0, (1, 2, 3), float("nan")),), [True, False, True]),
        (((1, (2, 0), float("inf")), (0, (0, 0, 0), float("-inf"))), [False, True, False]),
        (((2, (0, 1), float("nan")),), [False, True, True]),  # a head's row: not covered by the Gram, still read
        (((0, (2, 1, 1), 1e30),), [True, True, True]),  # finite, but its square overflows the float32 Gram: re-checked entry by entry
    ]:
        jac = jacobian(*edits)
        gram = jac.gram(2)
        assert jac.finite_rows(gram, 2) == want == jac.finite_rows()
    jac = jacobian()
    gram = jac.gram(2)
    jac.blocks[0][1, 0, 0] = float("nan")  # written after the Gram: a finite diagonal means the Gram's blocks are not read again
    assert jac.finite_rows(gram, 2) == [True, True, True] and jac.finite_rows() == [True, False, True]


@pytest.mark.parametrize("method", ["nash_mtl", "excess_mtl", "modo"])
def test_a_16_mixed_grad_scale_changes_nothing_but_the_scale(method):
    """Under a grad scaler the rows carry its scale s; methods that are not scale-free (Nash-MTL's norm
    cap, ExcessMTL's risks, MoDo's step) must see unscaled rows: the update is s × the unscaled one (review:
    Nash-MTL's step shrank by s, ExcessMTL / MoDo collapsed onto one task)."""
    from peftlab.weighting import ExcessMTLWeighting, MoDoWeighting, NashMTLWeighting

    make = {"nash_mtl": NashMTLWeighting, "excess_mtl": ExcessMTLWeighting, "modo": MoDoWeighting}[method]
    grads = []
    for scale in (1.0, 65536.0):
        model, weighting = Model(), make()
        weighting.setup(TASKS)
        for _ in range(2):  # a second step: the state written by the first is used
            for p in model.parameters():
                p.grad = None
            features, losses = model()
            per_task_backward(losses, model.shared(), list(model.heads.parameters()), weighting, grad_scale=scale)
        grads.append(torch.cat([p.grad.reshape(-1) / scale for p in model.shared() if p.grad is not None]))
    assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-6 * float(grads[0].abs().max()))
