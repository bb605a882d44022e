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


LM_VOCAB, LM_EOS = 40, 2  # the tiny decoders' vocabulary and end-of-sequence id (no pad id: set from EOS)


def save_tiny_causal_lm(path: Path, arch: str) -> Path:
    """A 2-layer decoder with its LM head written to ``path``: ``gpt2`` (Conv1D, fused c_attn) or
    ``llama`` (q/k/v/o with 4 query heads over 2 key/value heads, SwiGLU); no dropout, no pad token."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        config = GPT2Config(vocab_size=LM_VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=LM_EOS)
        GPT2LMHeadModel(config).save_pretrained(path)
    else:
        config = LlamaConfig(
            vocab_size=LM_VOCAB,
            hidden_size=HIDDEN,
            intermediate_size=INTERMEDIATE,
            num_hidden_layers=LAYERS,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            bos_token_id=1,
            eos_token_id=LM_EOS,
        )
        LlamaForCausalLM(config).save_pretrained(path)
    return path


def lm_batch(n: int = 8, seed: int = 0, tasks: int = 2) -> dict:
    """A right-padded prompt + response batch (prompt lengths 2..5, responses 1..4 tokens plus EOS)
    whose rows alternate between ``tasks`` tasks; the response is the prompt's first tokens reversed."""
    gen = torch.Generator().manual_seed(seed)
    rows, starts = [], []
    for _ in range(n):
        prompt = torch.randint(3, LM_VOCAB, (int(torch.randint(2, 6, (1,), generator=gen)),), generator=gen).tolist()
        response = prompt[: int(torch.randint(1, 5, (1,), generator=gen))][::-1] + [LM_EOS]
        rows.append(prompt + response)
        starts.append(len(prompt))
    width = max(len(r) for r in rows)
    ids = torch.full((n, width), LM_EOS)
    mask = torch.zeros(n, width, dtype=torch.long)
    labels = torch.full((n, width), -100)
    for b, (row, start) in enumerate(zip(rows, starts)):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
        labels[b, start : len(row)] = torch.tensor(row[start:])
    task_mask = torch.zeros(n, tasks, dtype=torch.bool)
    task_mask[torch.arange(n), torch.arange(n) % tasks] = True
    return {"inputs": {"input_ids": ids, "attention_mask": mask}, "y": task_mask.float(), "task_mask": task_mask, "lm_labels": labels}
