"""Tiny random transformers saved with save_pretrained (loaded back through from_pretrained, as users do) and text batches."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import torch

from peftlab.models import HFBackbone, MultiTaskModule
from peftlab.tasks import TaskSpec

VOCAB, HIDDEN, LAYERS, INTERMEDIATE = 100, 32, 2, 64
TASKS = [TaskSpec(name="cls", label="cls", num_classes=3), TaskSpec(name="reg", label="reg", num_classes=0)]


def save_tiny_bert(path: Path) -> Path:
    """A 2-layer BERT (hidden 32, 2 heads, vocabulary 100, no dropout) written to ``path``."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(path)
    return path


def save_tiny_gpt2(path: Path) -> Path:
    """A 2-layer GPT-2 (hidden 32, 2 heads, vocabulary 100, no dropout) written to ``path``."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    GPT2Model(config).save_pretrained(path)
    return path


def text_batches(n: int = 6, batch: int = 16, length: int = 12, seed: int = 0) -> list[dict]:
    """Right-padded token batches with two learnable tasks: 3 classes (first token mod 3) and a regression (mean token / 100)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
        lengths = torch.randint(4, length + 1, (batch,), generator=gen)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        ids = ids * mask
        y = torch.stack([(ids[:, 0] % 3).float(), (ids.float() * mask).sum(1) / mask.sum(1) / VOCAB], dim=1)
        out.append({"inputs": {"input_ids": ids, "attention_mask": mask}, "y": y, "task_mask": torch.ones(batch, 2, dtype=torch.bool)})
    return out


def hf_module(path: Path, sharing, pooling: str = "cls", lr: float = 1e-2, **kwargs) -> MultiTaskModule:
    """A MultiTaskModule on the model saved at ``path`` with the given sharing policy."""
    torch.manual_seed(0)
    return MultiTaskModule(
        backbone=functools.partial(HFBackbone, name_or_path=str(path), pooling=pooling),
        tasks=TASKS,
        sharing=sharing,
        optimizer=lambda params: torch.optim.AdamW(params, lr=lr),
        **kwargs,
    )


def quick_trainer(root: Path | None = None, **kwargs) -> L.Trainer:
    """A quiet CPU trainer (no logger; checkpoints only when ``root`` is given)."""
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=root is not None, default_root_dir=root, **kwargs)


@torch.no_grad()
def task_losses(module: MultiTaskModule, batches: list[dict]) -> dict[str, float]:
    """Mean loss of each task over ``batches`` (eval mode)."""
    module.eval()
    totals: dict[str, float] = {}
    for b in batches:
        for name, loss in module.task_losses(module(b["inputs"]), b).items():
            totals[name] = totals.get(name, 0.0) + float(loss) / len(batches)
    module.train()
    return totals
