"""The README's recipe for a pretrained decoder on two Hub datasets (``data=sft_datasets``, ``task_lora``)
runs end to end offline with local stand-ins: save_to_disk folders with the Alpaca and GSM8K column and
split layout in place of the hub names, and a tiny Llama-style decoder saved with ``save_pretrained`` (read
with the character tokenizer) in place of the instruct model. Everything else is the recipe's config."""

from __future__ import annotations

import json

import pytest

from conftest import compose_config
from peftlab.train import train

pytestmark = pytest.mark.slow  # trains a run in-process (seconds)


def save_stand_ins(root):
    """Alpaca-shaped (train only: instruction, input, output) and GSM8K-shaped (train/test: question, answer) folders, and a tiny decoder."""
    import datasets
    from transformers import LlamaConfig, LlamaForCausalLM

    instructions = [f"reverse {n}" for n in range(100, 160)]
    datasets.Dataset.from_dict({"instruction": instructions, "input": [""] * 60, "output": [s.split()[1][::-1] for s in instructions]}).save_to_disk(str(root / "alpaca"))
    split = lambda lo: datasets.Dataset.from_dict({"question": [f"{a}+1=" for a in range(lo, lo + 30)], "answer": [f"so {a + 1}" for a in range(lo, lo + 30)]})  # noqa: E731
    datasets.DatasetDict({"train": split(0), "test": split(50)}).save_to_disk(str(root / "gsm8k"))
    config = LlamaConfig(
        vocab_size=80,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(str(root / "decoder"))


def test_the_sft_recipe_trains_both_tasks_through_their_adapters(tmp_path):
    save_stand_ins(tmp_path)
    recipe = ["data=sft_datasets", "model=hf_causal_lm", f"model.name_or_path={tmp_path / 'decoder'}", "strategy=task_lora"]
    stand_ins = [
        f"data.sources.alpaca.dataset={tmp_path / 'alpaca'}",
        f"data.sources.gsm8k.dataset={tmp_path / 'gsm8k'}",
        "data.tokenizer=chars",
        "data.max_length=32",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
    ]
    fast = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=csv", "generation_samples=2"]
    metrics = train(compose_config([*recipe, *stand_ins, *fast], tmp_path / "run"))
    tasks = metrics["tasks"]
    assert set(tasks) == {"alpaca", "gsm8k"}
    assert 0.0 <= tasks["alpaca"]["rouge_l"] <= 1.0 and 0.0 <= tasks["gsm8k"]["exact_match"] <= 1.0
    assert 1.0 < tasks["gsm8k"]["perplexity"] < 80  # finite, below the vocabulary size
    samples = [json.loads(line) for line in (tmp_path / "run" / "generations" / "test.jsonl").read_text().splitlines()]
    assert {s["task"] for s in samples} == {"alpaca", "gsm8k"}
    assert any(s["prompt"].startswith("reverse 1") for s in samples) and any(s["reference"].startswith("so ") for s in samples)
