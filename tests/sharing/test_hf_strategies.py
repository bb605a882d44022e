"""Weighting, clipping and unstructured pruning on model=hf, built from the config as train.py builds it."""

from __future__ import annotations

import pytest
import torch

from hf_helpers import VOCAB, quick_trainer, save_tiny_bert
from peftlab.builders import build_model, build_trainer
from peftlab.callbacks.pruning import PruningCallback
from peftlab.pruning.adapter_gates import gate_pruned_rows
from peftlab.pruning.criteria import Magnitude

WEIGHTINGS = ["equal", "fixed", "uncertainty", "dwa", "rlw", "gradnorm", "pcgrad", "cagrad", "mgda", "imtl", "famo"]
CLIPPINGS = ["none", "norm", "value", "agc", "per_task"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def digits_task_batches(n: int = 3, batch: int = 8, length: int = 10) -> list[dict]:
    """Token batches labelled for the digits config's tasks (digit: 10 classes, parity, high) from the tokens."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
        y = torch.stack([ids[:, 0] % 10, ids[:, 0] % 2, (ids[:, 1] >= VOCAB // 2).long()], 1).float()
        out.append({"inputs": {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "y": y, "task_mask": torch.ones(batch, 3, dtype=torch.bool)})
    return out


def fit_steps(cfg, model):
    """Fit with the trainer train.py would build (2 steps; see hf_cfg)."""
    trainer = build_trainer(cfg, callbacks=[], loggers=[], model=model)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(digits_task_batches(), batch_size=None))
    return trainer


def hf_cfg(make_cfg, bert_dir, *overrides):
    return make_cfg("model=hf", f"model.name_or_path={bert_dir}", "trainer.max_epochs=1", "++trainer.max_steps=2", "++trainer.limit_val_batches=0", "++trainer.enable_checkpointing=false", *overrides)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_every_weighting_trains_lora_on_pooled_features(make_cfg, bert_dir, weighting):
    """model=hf puts gradient methods (and GradNorm) in representation mode; every method takes finite steps."""
    cfg = hf_cfg(make_cfg, bert_dir, "strategy=lora_share", f"strategy/weighting={weighting}")
    model = build_model(cfg)
    if model.weighting.needs_task_gradients or model.weighting.uses_shared:  # the methods with a mode argument
        assert model.weighting.mode == "representation"
    adapter_before = [p.detach().clone() for p in model.body.trainable_parameters()]
    trainer = fit_steps(cfg, model)
    assert trainer.global_step == 2 and model.guard.skipped == 0
    assert any(not torch.equal(a, p) for a, p in zip(adapter_before, model.body.trainable_parameters()))
    assert all(torch.isfinite(p).all() for p in model.trainable_parameters())


@pytest.mark.parametrize("clipping", CLIPPINGS)
def test_every_clipping_mode_on_a_transformer(make_cfg, bert_dir, clipping):
    cfg = hf_cfg(make_cfg, bert_dir, "strategy/sharing=bitfit", f"strategy/clipping={clipping}")
    model = build_model(cfg)
    biases_before = [p.detach().clone() for p in model.body.trainable_parameters()]
    trainer = fit_steps(cfg, model)
    assert trainer.global_step == 2 and model.guard.skipped == 0
    assert any(not torch.equal(a, p) for a, p in zip(biases_before, model.body.trainable_parameters()))
    assert all(torch.isfinite(p).all() for p in model.trainable_parameters())


def test_accumulation_on_the_per_task_path_is_the_models_own(make_cfg, bert_dir):
    """trainer.accumulate_grad_batches=2 with PCGrad: the Trainer gets 1, the per-task step accumulates 2 micro-batches per step."""
    cfg = hf_cfg(make_cfg, bert_dir, "strategy/sharing=bitfit", "strategy/weighting=pcgrad", "++trainer.accumulate_grad_batches=2", "++trainer.max_steps=-1")
    model = build_model(cfg)
    assert model.accumulate_grad_batches == 2
    trainer = build_trainer(cfg, callbacks=[], loggers=[], model=model)
    assert trainer.accumulate_grad_batches == 1
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(digits_task_batches(4), batch_size=None))
    assert trainer.global_step == 2


def test_magnitude_pruning_of_frozen_base_weights_survives_an_adapter_only_checkpoint(make_cfg, bert_dir, tmp_path):
    """LoRA + 50 % magnitude pruning of the base linear weights (adapters excluded): the checkpoint
    drops the frozen weights but keeps their masks, and reloads to identical outputs."""
    cfg = hf_cfg(make_cfg, bert_dir, "strategy=lora_share", "strategy.sharing.adapter.lora_dropout=0.0")
    model = build_model(cfg)
    pruning = PruningCallback(criterion=Magnitude(), schedule="one_shot", start_step=1, end_step=2, final_sparsity=0.5, exclude="lora_")
    quick_trainer(tmp_path, max_steps=3, callbacks=[pruning]).fit(model, train_dataloaders=torch.utils.data.DataLoader(digits_task_batches(), batch_size=None))
    query = model.body.backbone.model.encoder.layer[0].attention.self.query
    assert float((query.base_layer.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert not any(bool((p == 0).any()) for n, p in model.body.named_parameters() if "lora_B" not in n and "lora_" in n)

    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=False)
    assert "body.backbone.model.encoder.layer.0.attention.self.query.base_layer.weight" not in ckpt["state_dict"]
    assert "body.backbone.model.encoder.layer.0.attention.self.query.base_layer.weight_mask" in ckpt["state_dict"]
    reloaded = build_model(cfg)
    reloaded.on_load_checkpoint(ckpt)
    reloaded.load_state_dict(ckpt["state_dict"])
    gate_pruned_rows(reloaded.body.adapter_layers())  # as eval/export/predict load it: the LoRA update masked like its base
    model.eval(), reloaded.eval()
    batch = digits_task_batches(1)[0]
    with torch.no_grad():
        for name, out in model(batch["inputs"]).items():
            torch.testing.assert_close(reloaded(batch["inputs"])[name], out, rtol=0, atol=0)
