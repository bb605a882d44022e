"""Causal-LM data: prompt / response columns of text files, token-level labels beside ``y``, left truncation
of long prompts, the built-in character tokenizer and the synthetic generation source."""

from __future__ import annotations

import logging

import pytest
import torch

from peftlab.data import MultiTaskDataModule, PromptResponses, SyntheticGeneration, TokenizedTexts
from peftlab.data.char_tokenizer import CHARS, VOCAB_SIZE
from peftlab.data.tokenize import load_tokenizer
from peftlab.data.tokenize_lm import fit_to_length, tokenize_prompt_response
from peftlab.errors import ConfigError
from text_helpers import write_csv, write_jsonl

LM = [{"name": "echo", "type": "causal_lm"}]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def chars():
    return load_tokenizer("chars")


def test_the_chars_tokenizer_is_one_token_per_character(chars):
    assert len(chars) == VOCAB_SIZE and (chars.pad_token_id, chars.bos_token_id, chars.eos_token_id, chars.unk_token_id) == (0, 1, 2, 3)
    ids = chars("add 12+30=")["input_ids"]
    assert ids[0] == 1 and ids[1:] == [4 + CHARS.index(c) for c in "add 12+30="]
    assert chars.decode(ids, skip_special_tokens=True) == "add 12+30="


def test_rows_are_prompt_response_and_eos_with_labels_from_the_response_on(chars):
    tokens = tokenize_prompt_response(PromptResponses(["ab=", "xyz="], ["ba", "zyx"]), chars, max_length=32)
    batch = tokens.batch([0, 1])
    ids, labels = batch["input_ids"], batch["lm_labels"]
    assert ids[0, :7].tolist() == [1, *chars("ab=", add_special_tokens=False)["input_ids"], *chars("ba", add_special_tokens=False)["input_ids"], 2]
    assert labels[0].tolist() == [-100] * 4 + ids[0, 4:7].tolist() + [-100] * 2  # prompt (with <s>) and padding masked
    assert labels[1].tolist() == [-100] * 5 + ids[1, 5:9].tolist()
    again = TokenizedTexts.concat([tokens.subset(torch.tensor([1])), tokens.subset(torch.tensor([0]))]).batch([0, 1])
    assert torch.equal(again["lm_labels"][0], labels[1]) and torch.equal(again["lm_labels"][1, :7], labels[0, :7])


def test_a_long_prompt_is_truncated_from_the_left_with_a_counted_warning(chars, caplog):
    assert fit_to_length(list(range(10)), [50, 51, 2], 8) == ([5, 6, 7, 8, 9], [50, 51, 2], True, False)
    assert fit_to_length([1, 2], list(range(10)), 4) == ([2], [0, 1, 2], True, True)
    with caplog.at_level(logging.WARNING, logger="peftlab.data.tokenize_lm"):
        tokens = tokenize_prompt_response(PromptResponses(["0123456789=", "1="], ["9", "1"]), chars, max_length=6)
    assert "1 prompt(s) truncated from the left and 0 response(s) cut at the end to fit data.max_length=6" in caplog.text
    batch = tokens.batch([0])
    assert chars.decode(batch["input_ids"][0]) == "789=9</s>"  # the prompt's end, next to its response, is kept


def test_text_files_with_prompt_and_response_columns_train_a_causal_lm_task(tmp_path):
    rows = [{"question": f"q{i}", "answer": f"a{i % 7}"} for i in range(60)]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    sources = {"echo": {"path": str(path), "prompt": "question", "response": "answer"}}
    dm = MultiTaskDataModule(tasks=LM, sources=sources, tokenizer="chars", val_fraction=0.2, test_fraction=0.2, batch_size=8)
    dm.setup()
    assert {s: len(dm.splits[s]) for s in ("train", "val", "test")} == {"train": 36, "val": 12, "test": 12}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"inputs", "y", "task_mask", "lm_labels"} and set(batch["inputs"]) == {"input_ids", "attention_mask"}
    assert batch["lm_labels"].shape == batch["inputs"]["input_ids"].shape and bool(batch["task_mask"].all())
    assert ((batch["lm_labels"] != -100).sum(1) == 3).all()  # "a<digit>" + </s>


def test_the_default_columns_a_missing_column_and_misplaced_keys_are_one_line(tmp_path):
    path = write_csv(tmp_path / "qa.csv", ["prompt", "reply"], [[f"p{i}", f"r{i}"] for i in range(30)])
    dm = MultiTaskDataModule(tasks=LM, sources={"echo": {"path": str(path)}}, tokenizer="chars")
    with pytest.raises(ConfigError, match=r"^data.sources.echo.response: no column 'response' in .*qa.csv; columns: \['prompt', 'reply'\]$"):
        dm.setup()
    dm = MultiTaskDataModule(tasks=LM, sources={"echo": {"path": str(path), "response": "reply"}}, tokenizer="chars")
    dm.setup()
    assert len(dm.splits["train"]) > 0
    tasks = [{"name": "mood", "type": "classification", "num_classes": 2}]
    with pytest.raises(ConfigError, match="data.sources.mood.response: only causal_lm tasks read prompt / response or messages columns"):
        MultiTaskDataModule(tasks=tasks, sources={"mood": {"path": str(path), "response": "reply"}}, tokenizer="chars").setup()


def test_synthetic_generation_writes_the_same_exact_rows_every_time(tmp_path):
    source = SyntheticGeneration("add", str(tmp_path), train=50, validation=5, test=5, digits=(1, 2), seed=1)
    tables = source.load()
    first = (tmp_path / source.folder.name / "train.jsonl").read_text()
    assert {k: len(v) for k, v in tables.items()} == {"train": 50, "val": 5, "test": 5}
    for prompt, response in zip(tables["train"].x.prompts, tables["train"].x.responses):
        a, b = prompt.removeprefix("add ").removesuffix("=").split("+")
        assert int(response) == int(a) + int(b) and int(a) < 100
    (tmp_path / source.folder.name / "train.jsonl").unlink()
    SyntheticGeneration("add", str(tmp_path), train=50, validation=5, test=5, digits=(1, 2), seed=1).load()
    assert (tmp_path / source.folder.name / "train.jsonl").read_text() == first
    rev = SyntheticGeneration("reverse", str(tmp_path), train=20, validation=2, test=2, digits=(4, 7)).rows("train")
    assert all(r["response"] == r["prompt"].removeprefix("reverse ").removesuffix("=")[::-1] and 4 <= len(r["response"]) <= 7 for r in rev)
    assert SyntheticGeneration("add", str(tmp_path), train=2000, test=50, digits=(1, 1), held_out=False).seen_in_training() == 1.0  # 100 prompts in all
    assert SyntheticGeneration("reverse", str(tmp_path), train=100, test=50, digits=(7, 7)).seen_in_training() == 0.0
    assert SyntheticGeneration("add", str(tmp_path), train=300, validation=40, test=40, digits=(1, 1)).seen_in_training("validation") == 0.0  # held out by default
    with pytest.raises(ConfigError, match="data.source.held_out: training covers"):
        SyntheticGeneration("add", str(tmp_path), train=2000, test=50, digits=(1, 1)).rows("test")
    with pytest.raises(ConfigError, match="data.source.task: must be one of reverse, add"):
        SyntheticGeneration("sort", str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, key",
    [({"digits": 3}, "digits"), ({"digits": [3]}, "digits"), ({"digits": ["a", "b"]}, "digits"), ({"seed": "x"}, "seed"), ({"train": True}, "train"), ({"held_out": "yes"}, "held_out")],
)
def test_synthetic_generation_bad_settings_are_one_config_error(tmp_path, kwargs, key):
    with pytest.raises(ConfigError) as info:
        SyntheticGeneration("add", str(tmp_path), **kwargs)
    assert info.value.key == f"data.source.{key}"
