"""predict.py on a causal-LM run: each prompt's greedy generation, equal to Hugging Face ``model.generate``
on the trained decoder; a run dir is accepted; a model without an LM head refuses max_new_tokens."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import compose_config
from peftlab.errors import ConfigError
from peftlab.inference import load_for_inference
from peftlab.predict import predict
from peftlab.train import train

pytestmark = pytest.mark.slow  # trains a run in-process (seconds)

FAST = ["trainer.max_epochs=1", "++trainer.limit_train_batches=4", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=csv"]
TOY = [
    "experiment=generation_toy",
    "trainer.check_val_every_n_epoch=1",
    "data.sources.reverse.train=64",
    "data.sources.add.train=64",
    "data.sources.reverse.test=8",
    "data.sources.add.test=8",
    "generation_samples=0",
    "model.optimizer.lr=1e-7",
]  # near its random init: long, varied generations


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_run")
    metrics = train(compose_config([*FAST, *TOY, f"paths.data_dir={root / 'data'}"], root / "run"))
    return root, metrics


def test_generations_equal_hf_generate_and_a_run_dir_names_its_checkpoint(tmp_path, lm_run):
    root, metrics = lm_run
    prompts = ["reverse 1234=", "add 12+30=", "reverse 98765="]
    out = tmp_path / "gen.jsonl"
    cfg = compose_config([f"ckpt_path={metrics['run_dir']}", f"texts={json.dumps(prompts)}", f"output={out}", "max_new_tokens=6", "batch_size=2"], tmp_path / "p", config_name="predict")
    assert predict(cfg)["rows"] == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    model = load_for_inference(metrics["ckpt_path"])
    hf = model.network.body.backbone.model
    tok = model.tokenizer
    for row, prompt in zip(rows, prompts):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False, pad_token_id=0)[0, ids.shape[1] :].tolist()
        want = want[: want.index(2)] if 2 in want else want  # up to </s>
        assert row == {"text": prompt, "generation": tok.decode(want, skip_special_tokens=True)}
    assert sum(len(r["generation"]) for r in rows) >= 6  # not all stopped at once: the comparison means something


def test_bad_max_new_tokens_and_generation_from_a_classifier_are_one_line(tmp_path, lm_run):
    _, metrics = lm_run
    cfg = compose_config([f"ckpt_path={metrics['ckpt_path']}", "texts=[a]", "max_new_tokens=0"], tmp_path / "p", config_name="predict")
    with pytest.raises(ConfigError, match=r"^max_new_tokens: must be a whole number >= 1; got 0$"):
        predict(cfg)
    digits = train(compose_config([*FAST], tmp_path / "digits"))
    cfg = compose_config([f"ckpt_path={digits['ckpt_path']}", "texts=[a]", "max_new_tokens=5"], tmp_path / "q", config_name="predict")
    with pytest.raises(ConfigError, match=r"^max_new_tokens: this model has no LM head to generate with \(its tasks: digit \(classification\), .*\); it predicts labels: leave max_new_tokens out$"):
        predict(cfg)


def test_conversations_are_rendered_and_answered(tmp_path, lm_run):
    """A JSON-lines file whose column holds {role, content} turns: each conversation rendered with the
    plain template (the char tokenizer has no chat template) plus ``assistant: ``, generated from as
    Hugging Face ``generate`` does from the same ids; the output's text is the turns as JSON."""
    _, metrics = lm_run
    chats = [[{"role": "user", "content": "reverse 1234="}], [{"role": "system", "content": "be brief"}, {"role": "user", "content": "add 1+2="}]]
    source = tmp_path / "chats.jsonl"
    source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in chats))
    out = tmp_path / "gen.jsonl"
    cfg = compose_config([f"ckpt_path={metrics['run_dir']}", f"input={source}", "input_column=messages", f"output={out}", "max_new_tokens=6"], tmp_path / "p", config_name="predict")
    assert predict(cfg)["rows"] == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    model = load_for_inference(metrics["ckpt_path"])
    hf, tok = model.network.body.backbone.model, model.tokenizer
    for row, chat in zip(rows, chats):
        text = "".join(f"{t['role']}: {t['content']}\n" for t in chat) + "assistant: "
        ids = torch.tensor([tok("")["input_ids"] + tok(text, add_special_tokens=False)["input_ids"]])
        want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False, pad_token_id=0)[0, ids.shape[1] :].tolist()
        want = want[: want.index(2)] if 2 in want else want
        assert row == {"text": json.dumps(chat), "generation": tok.decode(want, skip_special_tokens=True)}

    answered = tmp_path / "answered.jsonl"
    answered.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    cfg = compose_config([f"ckpt_path={metrics['run_dir']}", f"input={answered}", "input_column=messages", f"output={out}"], tmp_path / "q", config_name="predict")
    with pytest.raises(ConfigError, match=r"^input_column: input row 1: the last turn is the assistant's; end each conversation with the turn the model should answer$"):
        predict(cfg)
    cfg = compose_config([f"ckpt_path={metrics['run_dir']}", f"input={source}", "input_column=messages", "chat_template=tokenizer", f"output={out}"], tmp_path / "r", config_name="predict")
    with pytest.raises(ConfigError, match=r"^chat_template: is 'tokenizer' but the tokenizer .* has no chat template"):
        predict(cfg)
