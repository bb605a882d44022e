"""Per-task gradients from one backward when every row has one task: equal to the batched pass's blocks
(GPT-2 and Llama-shaped decoders with shared LoRA, and a plain MLP with heads), the same ``.grad`` after a
gradient method combines them, and the batched pass kept wherever the split would not be exact."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from hf_helpers import lm_batch, save_tiny_causal_lm
from peftlab.models import HFCausalLMBackbone, MultiTaskModule, per_task_backward
from peftlab.models.task_jacobian import TaskJacobian
from peftlab.models.task_rows import LinearRecorder, blocks_by_task_rows, row_tasks
from peftlab.sharing import PeftAdapter
from peftlab.tasks import parse_task_specs
from peftlab.weighting.upgrad import UPGradWeighting

LM_TASKS = [{"name": n, "type": "causal_lm"} for n in ("a", "b", "c")]


def decoder_module(tmp_path, arch: str) -> MultiTaskModule:
    folder = save_tiny_causal_lm(tmp_path / arch, arch)
    torch.manual_seed(0)
    module = MultiTaskModule(functools.partial(HFCausalLMBackbone, str(folder)), parse_task_specs(LM_TASKS), sharing=PeftAdapter())
    for name, p in module.named_parameters():  # B starts at 0 in LoRA: give it values, or A's gradient is 0 for every task
        if "lora_B" in name:
            nn.init.normal_(p, std=0.1)
    return module.train()


def losses_of(module, batch, record: bool) -> list[torch.Tensor]:
    torch.manual_seed(1)  # the same LoRA dropout masks in both passes
    with module.linear_calls.recording(module, module.trainable_parameters() if record else ()):
        outputs = module(batch["inputs"], batch["task_mask"])
    return list(module.task_losses(outputs, batch).values())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_one_backward_gives_the_batched_passes_blocks_on_a_decoder_with_lora(tmp_path, arch):
    module = decoder_module(tmp_path, arch)
    batch = lm_batch(9, tasks=3)
    params = [p for p in module.trainable_parameters() if p.requires_grad]
    tasks = row_tasks(batch["task_mask"], [0, 1, 2])
    assert tasks.tolist() == [0, 1, 2] * 3
    ours = blocks_by_task_rows(losses_of(module, batch, True), params, module.linear_calls.take(), tasks)
    ref = TaskJacobian.of(losses_of(module, batch, False), params).blocks
    assert ours is not None and len(ours) == len(ref) > 0
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert all(float(a[k].abs().sum()) > 0 for a in ours for k in range(3))  # every task reaches every factor


def test_the_combined_gradient_is_the_same_as_the_batched_passes(tmp_path):
    module = decoder_module(tmp_path, "llama")
    module.weighting = UPGradWeighting()
    module.weighting.setup(["a", "b", "c"])
    batch = lm_batch(9, tasks=3)
    shared = module.body.shared_parameters()
    grads = []
    for record in (True, False):
        module.zero_grad(set_to_none=True)
        losses = dict(zip("abc", losses_of(module, batch, record)))
        per_task_backward(losses, shared, [], module.weighting, linear_calls=module.linear_calls.take(), task_mask=batch["task_mask"])
        grads.append([p.grad.clone() for p in shared])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


class TwoHeads(nn.Module):
    """A shared MLP layer and one head per task (every parameter in an nn.Linear)."""

    def __init__(self, twice: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.shared, self.heads, self.twice = nn.Linear(5, 4), nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 1)]), twice

    def forward(self, x):
        h = torch.tanh(self.shared(x))
        if self.twice:
            h = torch.tanh(self.shared(h[:, :5] if h.shape[1] >= 5 else torch.cat([h, h[:, :1]], dim=1)))
        return [head(h).squeeze(1) for head in self.heads]


def mlp_losses(model, x, y, mask):
    outs = model(x)
    return [((outs[t] - y)[mask[:, t]] ** 2).mean() for t in range(2)]


def split_of(model, x, y, mask, extra=None):
    """The one-backward blocks of the MLP's two task losses (None: the batched pass is needed) and the
    batched pass's blocks, for every parameter (``extra``: one more parameter multiplying the losses)."""
    params = [*model.parameters(), *([extra] if extra is not None else [])]
    rec = LinearRecorder()
    with rec.recording(model, list(model.parameters())):
        losses = [loss * (extra if extra is not None else 1) for loss in mlp_losses(model, x, y, mask)]
    ours = blocks_by_task_rows(losses, params, rec.take(), row_tasks(mask, [0, 1]))
    return ours, (TaskJacobian.of(mlp_losses(model, x, y, mask), list(model.parameters())).blocks if ours is not None else None)


MIXED = torch.tensor([[1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [0, 1]], dtype=torch.bool)


def test_heads_and_shared_layers_of_a_plain_mlp(tmp_path):
    ours, ref = split_of(TwoHeads(), torch.randn(6, 5), torch.randn(6), MIXED)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert float(ours[2][1].abs().sum()) == 0 and float(ours[4][0].abs().sum()) == 0  # a head gets nothing from the other task


def test_the_batched_pass_is_kept_where_the_split_would_not_be_exact():
    joint = torch.tensor([[1, 1], [0, 1]], dtype=torch.bool)
    assert row_tasks(joint, [0, 1]) is None  # a row labelled for two tasks
    assert row_tasks(torch.tensor([[0, 0], [0, 1]], dtype=torch.bool), [0, 1]) is None  # a row with none
    x, y = torch.randn(4, 5), torch.randn(4)
    mask = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.bool)
    assert split_of(TwoHeads(twice=True), x, y, mask)[0] is None  # the shared layer called twice: its gradient is not one gᵀx
    assert split_of(TwoHeads(), x, y, mask, extra=nn.Parameter(torch.ones(())))[0] is None  # a parameter outside every linear layer


def test_a_pruning_mask_on_a_weight_is_applied_to_every_tasks_row():
    from peftlab.pruning.masks import attach_mask, mask_gradients

    model = TwoHeads()
    attach_mask(model.shared, "weight").copy_((torch.arange(20).reshape(4, 5) % 3 != 0).float())
    mask_gradients(model.shared, "weight")
    ours, ref = split_of(model, torch.randn(6, 5), torch.randn(6), MIXED)
    assert ours is not None
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


class Tied(TwoHeads):
    """The shared weight also used outside its layer (tied), or the layer's output changed in place."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how

    def forward(self, x):
        out = self.shared(x)
        if self.how == "inplace":
            out = out.relu_()
        h = torch.tanh(out)
        if self.how == "tied":
            h = h + x @ self.shared.weight.T * 0.5
        return [head(h).squeeze(1) for head in self.heads]


@pytest.mark.parametrize("how", ["inplace", "tied"])
def test_a_weight_used_outside_its_call_or_an_output_changed_in_place_takes_the_batched_pass(how):
    model = Tied(how)
    x, y = torch.randn(4, 5), torch.randn(4)
    mask = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.bool)
    rec = LinearRecorder()
    with rec.recording(model, list(model.parameters())):
        losses = mlp_losses(model, x, y, mask)
    assert blocks_by_task_rows(losses, list(model.parameters()), rec.take(), row_tasks(mask, [0, 1])) is None


def test_a_batch_norm_in_training_mixes_rows_so_nothing_is_recorded():
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)).train()
    rec = LinearRecorder()
    with rec.recording(model, list(model.parameters())):
        model(torch.randn(4, 5))
    assert rec.take() == []
