"""The causal-LM cross-entropy that keeps one [N, V] tensor: values and gradients equal F.cross_entropy's."""

import pytest
import torch
import torch.nn.functional as F

from peftlab.tasks import token_cross_entropy as tce
from peftlab.tasks.lm_metrics import masked_token_losses
from peftlab.tasks.token_cross_entropy import IGNORE, token_cross_entropy


def rows(n: int = 40, v: int = 13, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets with some positions ignored."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, v, generator=gen) * 3
    target = torch.randint(0, v, (n,), generator=gen)
    target[::5] = IGNORE
    return logits, target


@pytest.mark.parametrize("chunk", [7 * 13, 1 << 24])
def test_values_and_gradients_equal_f_cross_entropy(monkeypatch, chunk):
    monkeypatch.setattr(tce, "CHUNK_ELEMENTS", chunk)  # several logsumexp chunks (7 rows of 13), and one
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


def test_consuming_the_logits_gives_the_same_gradient_in_their_own_buffer():
    """Inside consuming_logits (the step's last backward) the float32 logits become their gradient."""
    from peftlab.tasks.token_cross_entropy import consuming_logits

    logits, target = rows()
    h = logits.clone().requires_grad_(True)
    y = h * 1.5  # the logits: a non-leaf that nothing else saved
    with consuming_logits():
        token_cross_entropy(y, target).sum().backward()
    h2 = logits.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(F.cross_entropy(h2 * 1.5, target, reduction="sum", ignore_index=IGNORE), h2)
    torch.testing.assert_close(h.grad, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(y.detach(), h.grad / 1.5, rtol=1e-6, atol=1e-7)  # the logits' buffer now holds ∂/∂y


def test_the_modules_backward_hook_gives_the_same_parameter_gradients():
    """MultiTaskModule.backward (Lightning's automatic path) consumes the logits; the decoder's gradients equal a plain backward's."""
    import functools

    from hf_helpers import lm_batch, save_tiny_causal_lm
    from peftlab.models import HFCausalLMBackbone, MultiTaskModule
    from peftlab.tasks import parse_task_specs

    def grads(hook: bool, folder) -> list[torch.Tensor]:
        torch.manual_seed(0)
        tasks = parse_task_specs([{"name": "a", "type": "causal_lm"}, {"name": "b", "type": "causal_lm"}])
        module = MultiTaskModule(functools.partial(HFCausalLMBackbone, str(folder)), tasks)
        batch = lm_batch(8)
        loss = sum(module.task_losses(module(batch["inputs"], batch["task_mask"]), batch).values())
        module.backward(loss) if hook else loss.backward()
        return [p.grad.clone() for p in module.parameters() if p.grad is not None]

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_causal_lm(Path(tmp) / "llama", "llama")
        plain, hooked = grads(False, folder), grads(True, folder)
    assert len(plain) == len(hooked) > 0
    for a, b in zip(plain, hooked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
