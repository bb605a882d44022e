"""Embedding tables taken by the rows the batch used (``models/embedding_rows.py``) give the same Gram matrix and the
same ``.grad`` as the dense per-task blocks, on a tiny BERT (padding ids) and a tiny GPT-2 (``wte`` tied to
``lm_head``: left on the dense path), for Gram-only and raw-row methods, per-task clipping, and the DDP fallback."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hf_helpers import save_tiny_bert, save_tiny_gpt2
from peftlab.clipping import PerTaskClipping
from peftlab.models import task_jacobian
from peftlab.models.embedding_rows import EmbeddingRecorder, RowBlock, row_plan
from peftlab.models.per_task_backward import per_task_backward
from peftlab.models.task_jacobian import TaskJacobian
from peftlab.weighting import GradDropWeighting, GradVacWeighting, PCGradWeighting, UPGradWeighting

TASKS = ["a", "b", "c"]


class Bert(nn.Module):
    """A tiny BERT loaded with from_pretrained, three heads on [CLS]; ids with right padding (id 0 = padding_idx)."""

    def __init__(self, path):
        super().__init__()
        from transformers import BertModel

        self.body = BertModel.from_pretrained(path)
        torch.manual_seed(1)
        self.heads = nn.ModuleDict({t: nn.Linear(self.body.config.hidden_size, 1) for t in TASKS})
        gen = torch.Generator().manual_seed(2)
        self.ids = torch.randint(1, 100, (4, 10), generator=gen)
        self.ids[:, 7:] = 0  # padding: the table's padding row gets no gradient

    def losses(self, recorder):
        with recorder.recording(self.body, self.shared()):
            feats = self.body(input_ids=self.ids, attention_mask=(self.ids != 0).long()).last_hidden_state[:, 0]
        return {t: (self.heads[t](feats).squeeze(-1) - k).pow(2).mean() for k, t in enumerate(TASKS)}

    def shared(self):
        return list(self.body.parameters())


def run(model, weighting, lookups_on: bool, clip=None):
    """``.grad`` of every parameter after per_task_backward, with or without the row path."""
    model.zero_grad(set_to_none=True)
    recorder = EmbeddingRecorder()
    losses = model.losses(recorder)
    lookups = recorder.take() if lookups_on else ()
    per_task_backward(losses, model.shared(), list(model.heads.parameters()), weighting, clip_rows=clip.clip_rows if clip else None, lookups=lookups)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]  # the pooler: reached by no loss


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.mark.parametrize("method,clip", [(PCGradWeighting, False), (UPGradWeighting, False), (GradVacWeighting, False), (GradDropWeighting, False), (PCGradWeighting, True)])
def test_row_path_writes_the_dense_path_grad(bert_path, method, clip):
    model = Bert(bert_path)
    weighting = method()
    weighting.setup(TASKS)
    clipping = PerTaskClipping(max_norm=0.05) if clip else None
    want = run(model, copy.deepcopy(weighting), False, clipping)
    got = run(model, weighting, True, clipping)
    for w, g in zip(want, got):
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-6 * float(w.abs().max()) + 1e-12)
    word = model.body.embeddings.word_embeddings.weight.grad
    assert float(word.abs().max()) > 0 and float(word[0].abs().max()) == 0  # used rows have gradient, the padding row none
    unused = sorted(set(range(100)) - set(model.ids.unique().tolist()))
    assert float(word[unused].abs().max()) == 0


def test_gram_and_rows_of_the_row_blocks_match_the_dense_blocks(bert_path):
    model = Bert(bert_path)
    recorder = EmbeddingRecorder()
    losses = list(model.losses(recorder).values())
    targets = model.shared()
    plan = row_plan(recorder.take(), losses, targets)
    emb = model.body.embeddings
    tables = (emb.word_embeddings.weight, emb.position_embeddings.weight, emb.token_type_embeddings.weight)
    assert {id(targets[i]) for i in plan} == {id(w) for w in tables}  # word, position and token-type tables
    dense = TaskJacobian.of(losses, targets, retain_graph=True)
    rows = TaskJacobian.of(losses, targets, rows=plan)
    word = next(i for i in plan if targets[i] is emb.word_embeddings.weight)
    assert isinstance(rows.blocks[word], RowBlock) and rows.blocks[word].values.shape == (3, len(model.ids[model.ids != 0].unique()), 32)
    assert torch.allclose(rows.gram(len(targets)), dense.gram(len(targets)), rtol=1e-6)
    assert rows.finite_rows() == [True, True, True]
    assert torch.allclose(rows.to_rows(), dense.to_rows(), rtol=1e-6, atol=1e-9)


def test_ddp_turns_row_blocks_into_dense_blocks_before_the_all_reduce(bert_path, monkeypatch):
    model = Bert(bert_path)
    recorder = EmbeddingRecorder()
    losses = list(model.losses(recorder).values())
    targets = model.shared()
    plan = row_plan(recorder.take(), losses, targets)
    dense = TaskJacobian.of(losses, targets, retain_graph=True)
    rows = TaskJacobian.of(losses, targets, rows=plan)
    reduced = []
    monkeypatch.setattr(task_jacobian, "world_size", lambda: 2)  # two ranks: a rank's used rows are not the other's
    monkeypatch.setattr(task_jacobian, "all_reduce_mean", lambda t: reduced.append(t.shape) or t)
    rows.all_reduce_mean()
    assert not any(isinstance(b, RowBlock) for b in rows.blocks)
    assert reduced == [t.shape if t.dim() == 0 else (3, *t.shape) for t in targets]  # every rank reduces the same shapes
    for i in plan:
        assert torch.allclose(rows.blocks[i], dense.blocks[i], rtol=1e-6, atol=1e-9)


def test_a_weight_tied_to_the_lm_head_stays_dense(tmp_path):
    from transformers import GPT2LMHeadModel

    save_tiny_gpt2(tmp_path)
    lm = GPT2LMHeadModel.from_pretrained(tmp_path)
    assert lm.lm_head.weight is lm.transformer.wte.weight
    ids = torch.randint(1, 100, (3, 8), generator=torch.Generator().manual_seed(0))
    recorder = EmbeddingRecorder()
    shared = list(lm.parameters())
    with recorder.recording(lm, shared):
        logits = lm(input_ids=ids).logits
    losses = [nn.functional.cross_entropy(logits[k, :-1], ids[k, 1:]) for k in range(3)]  # one "task" per sequence
    plan = row_plan(recorder.take(), losses, shared)
    planned = [shared[i] for i in plan]
    assert any(w is lm.transformer.wpe.weight for w in planned)  # positions: only the lookup uses them
    assert not any(w is lm.transformer.wte.weight for w in planned)  # tied to the head: its gradient is dense
    dense = TaskJacobian.of(losses, shared, retain_graph=True)
    rows = TaskJacobian.of(losses, shared, rows=plan)
    assert torch.allclose(rows.gram(len(shared)), dense.gram(len(shared)), rtol=1e-6)


def test_an_output_changed_in_place_after_the_lookup_is_left_dense():
    emb = nn.Embedding(10, 4)
    recorder = EmbeddingRecorder()
    with recorder.recording(emb, [emb.weight]):
        out = emb(torch.tensor([1, 2, 2]))
    out.mul_(2.0)
    losses = [out.sum(), out.pow(2).sum()]
    assert row_plan(recorder.take(), losses, [emb.weight]) == {}


class Lookups(nn.Module):
    """A body with an embedding table (mean of the looked-up rows, then a linear layer)."""

    out_dim = 4

    def __init__(self):
        super().__init__()
        self.emb, self.lin = nn.Embedding(20, 6, padding_idx=0), nn.Linear(6, 4)

    def forward(self, x):
        return self.lin(self.emb(x).mean(dim=1))


@pytest.mark.parametrize("mode,recorded", [("params", 1), ("representation", 0)])
def test_the_module_hands_the_lookups_to_the_params_mode_only(monkeypatch, mode, recorded):
    import lightning as L

    from peftlab.models import multitask_module
    from peftlab.models.multitask_module import MultiTaskModule
    from peftlab.tasks import TaskSpec

    seen = []
    real = multitask_module.per_task_backward
    monkeypatch.setattr(multitask_module, "per_task_backward", lambda *a, **k: seen.append(len(k["lookups"])) or real(*a, **k))
    tasks = [TaskSpec(name=t, label=t, num_classes=2) for t in TASKS]
    module = MultiTaskModule(Lookups, tasks, weighting=PCGradWeighting(mode=mode))
    gen = torch.Generator().manual_seed(0)
    batches = [{"inputs": torch.randint(0, 20, (8, 5), generator=gen), "y": torch.randint(0, 2, (8, 3), generator=gen).float(), "task_mask": torch.ones(8, 3, dtype=torch.bool)}]
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert seen == [recorded]
