"""task_lora inside the MultiTaskModule: the batch's task_mask routes rows, training learns,
a step on one task's rows touches only that task's adapter and head, adapter-only checkpoints.

Needs the module to hand ``batch["task_mask"]`` to bodies with ``routes_by_task`` (peftlab.batch.call_body)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("hf_helpers")  # tests/hf_helpers.py arrives with the model=hf work (issue 10)
import functools  # noqa: E402

from hf_helpers import quick_trainer, save_tiny_bert, task_losses, text_batches  # noqa: E402
from peftlab.checkpoints.trainable_state import BASE_MODEL_KEY  # noqa: E402
from peftlab.models import HFBackbone, MultiTaskModule  # noqa: E402
from peftlab.sharing.task_lora import TaskLoRA  # noqa: E402
from peftlab.tasks import TaskSpec  # noqa: E402

# the two tasks of hf_helpers.text_batches: 3 classes, and a regression (metrics r2/mse)
TASKS = [TaskSpec(name="cls", label="cls", num_classes=3), TaskSpec(name="reg", label="reg", num_classes=0, metric="r2", metrics=("r2", "mse"))]


def hf_module(path, sharing, lr: float = 1e-2) -> MultiTaskModule:
    torch.manual_seed(0)
    return MultiTaskModule(backbone=functools.partial(HFBackbone, name_or_path=str(path), pooling="cls"), tasks=TASKS, sharing=sharing, optimizer=lambda params: torch.optim.AdamW(params, lr=lr))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def task_lora():
    return TaskLoRA(r=4, lora_alpha=8, target_modules=["query", "value"])


def mixed(batches):
    """The same batches with one task per row (alternating): GLUE-style mixed-task batches."""
    out = []
    for b in batches:
        mask = torch.zeros_like(b["task_mask"])
        mask[torch.arange(len(mask)), torch.arange(len(mask)) % mask.shape[1]] = True
        out.append({**b, "task_mask": mask})
    return out


def test_the_module_routes_rows_by_the_batch_task_mask(bert_dir):
    module = hf_module(bert_dir, task_lora()).eval()
    for p in module.body.trainable_parameters():  # lora_B starts at zero: give the adapters distinct updates
        torch.nn.init.normal_(p, std=0.5)
    b = mixed(text_batches(n=1))[0]
    with torch.no_grad():
        routed = module(b["inputs"], b["task_mask"])
        every = module(b["inputs"])  # no task_mask: every row through every task's adapter
    for t, task in enumerate(TASKS):
        rows = b["task_mask"][:, t]
        assert torch.allclose(routed[task.name][rows], every[task.name][rows], atol=1e-6)
    assert not torch.allclose(every[TASKS[0].name], every[TASKS[1].name][:, :1].expand_as(every[TASKS[0].name]))


def test_a_step_on_one_tasks_rows_changes_only_its_adapter_and_head(bert_dir):
    module = hf_module(bert_dir, task_lora())
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    b = text_batches(n=1)[0]
    b = {**b, "task_mask": torch.zeros_like(b["task_mask"])}
    b["task_mask"][:, 0] = True  # rows labelled for the first task only
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    loss = sum(module.task_losses(module(b["inputs"], b["task_mask"]), b).values())
    loss.backward()
    opt.step()
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    own = TASKS[0].name
    assert changed and all(f".lora_A.{own}." in n or f".lora_B.{own}." in n or n.startswith(f"heads.heads.{own}.") for n in changed), sorted(changed)[:4]


def test_training_lowers_each_tasks_loss_on_mixed_batches(bert_dir):
    module = hf_module(bert_dir, task_lora())
    batches = mixed(text_batches())
    # fit() standardises regression targets at its start: fit them first, so both losses are in the same units
    module.heads.fit_targets(torch.cat([b["y"] for b in batches]), torch.cat([b["task_mask"] for b in batches]))
    before = task_losses(module, batches)
    frozen = {n: p.detach().clone() for n, p in module.body.named_parameters() if n in module.body.frozen_parameter_names()}
    quick_trainer(max_epochs=8).fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    after = task_losses(module, batches)
    assert all(after[t] < 0.8 * before[t] for t in before), (before, after)
    assert all(torch.equal(p, frozen[n]) for n, p in module.body.named_parameters() if n in frozen)


def test_adapter_only_checkpoint_reloads_identically(bert_dir, tmp_path):
    batches = mixed(text_batches(n=2))
    first = hf_module(bert_dir, task_lora())
    quick_trainer(tmp_path, max_epochs=1).fit(first, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=False)
    params = dict(first.named_parameters())
    assert {k for k in ckpt["state_dict"] if k in params} == {f"body.{n}" for n in first.body.adapter_state_dict()} | {f"heads.{n}" for n, _ in first.heads.named_parameters()}
    assert ckpt[BASE_MODEL_KEY]["name_or_path"] == str(bert_dir)
    reloaded = hf_module(bert_dir, task_lora())
    reloaded.on_load_checkpoint(ckpt)
    reloaded.load_state_dict(ckpt["state_dict"])
    first.eval(), reloaded.eval()
    with torch.no_grad():
        a, b = first(batches[0]["inputs"], batches[0]["task_mask"]), reloaded(batches[0]["inputs"], batches[0]["task_mask"])
    assert all(torch.equal(a[k], b[k]) for k in a)
