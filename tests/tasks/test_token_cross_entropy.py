"""The causal-LM cross-entropy that keeps one [N, V] tensor: values and gradients equal F.cross_entropy's."""

import pytest
import torch
import torch.nn.functional as F

from peftlab.tasks import token_cross_entropy as tce
from peftlab.tasks.lm_metrics import masked_token_losses
from peftlab.tasks.token_cross_entropy import IGNORE, batched_backward, token_cross_entropy


def rows(n: int = 40, v: int = 13, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets with some positions ignored."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, v, generator=gen) * 3
    target = torch.randint(0, v, (n,), generator=gen)
    target[::5] = IGNORE
    return logits, target


@pytest.mark.parametrize("chunk", [7, 1024])
def test_values_and_gradients_equal_f_cross_entropy(monkeypatch, chunk):
    monkeypatch.setattr(tce, "CHUNK", chunk)  # several logsumexp chunks, and one
    logits, target = rows()
    weights = torch.rand(len(target))
    ours = logits.clone().requires_grad_(True)
    ref = logits.clone().requires_grad_(True)
    a = token_cross_entropy(ours, target)
    b = F.cross_entropy(ref, target, reduction="none", ignore_index=IGNORE)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert bool((a[target == IGNORE] == 0).all())
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-6, atol=1e-7)
    assert bool((ours.grad[target == IGNORE] == 0).all())


def test_bf16_logits_get_a_bf16_gradient_of_float32_values():
    logits, target = rows()
    ours = logits.bfloat16().requires_grad_(True)
    loss = token_cross_entropy(ours, target)
    assert loss.dtype == torch.float32
    ref = F.cross_entropy(ours.detach().float(), target, reduction="none", ignore_index=IGNORE)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    assert ours.grad.dtype == torch.bfloat16


def test_batched_backward_gives_every_tasks_gradient():
    """Under is_grads_batched (the per-task backward's one pass) each row of the Jacobian equals its own backward."""
    logits, target = rows()
    h = logits.clone().requires_grad_(True)
    loss = token_cross_entropy(h * 2, target)
    stacked = torch.stack([loss[:20].sum(), loss[20:].sum(), loss.mean()])
    with batched_backward():
        (jac,) = torch.autograd.grad(stacked, h, grad_outputs=torch.eye(3), is_grads_batched=True)
    h2 = logits.clone().requires_grad_(True)
    ref_loss = F.cross_entropy(h2 * 2, target, reduction="none", ignore_index=IGNORE)
    ref = torch.stack([torch.autograd.grad(r, h2, retain_graph=True)[0] for r in (ref_loss[:20].sum(), ref_loss[20:].sum(), ref_loss.mean())])
    torch.testing.assert_close(jac, ref, rtol=1e-6, atol=1e-7)


def test_masked_token_losses_shift_the_labels():
    """Position i's logits predict label i + 1; the sum and count equal a hand-shifted cross-entropy."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 11, generator=gen)
    labels = torch.randint(0, 11, (3, 6), generator=gen)
    labels[:, :2] = IGNORE
    total, count = masked_token_losses(logits, labels)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum")
    torch.testing.assert_close(total, ref)
    assert int(count) == 3 * 4
