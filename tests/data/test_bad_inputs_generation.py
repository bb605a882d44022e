"""Bad-input catalogue, generation: chat rows without the template they ask for, a missing messages
column, a bad messages cell, a dataset split that does not exist, a causal_lm task on a model
without an LM head, and generation asked of a classifier — each one line naming the key.

The harness (tests/bad_input_harness.py) runs the real command from the repository root: exit
status 2, exactly one ``error:`` line, no traceback, nothing in a finished run changed.
"""

from __future__ import annotations

import json

import pytest

from bad_input_harness import check_bad_input

TALK = json.dumps({"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "ba"}]}) + "\n"
CHAT = ["experiment=generation_toy", "data.tasks=[{name: chat, type: causal_lm}]"]


def chat(**settings: str) -> list[str]:
    """The chat task reading {tmp}/chat.jsonl with ``settings`` added to its source mapping."""
    extra = "".join(f", {k}: {v}" for k, v in settings.items())
    return [*CHAT, "data.sources={chat: {path: {tmp}/chat.jsonl" + extra + "}}"]


# (id, script, args (with {tmp}, {run}), what the error line must name, files to write {name: content})
CASES = [
    ("chat_template_absent", "train.py", chat(messages="messages", chat_template="tokenizer"), "data.sources.chat.chat_template: is 'tokenizer' but the tokenizer", {"chat.jsonl": TALK * 40}),
    ("chat_template_unknown", "train.py", chat(messages="messages", chat_template="jinja"), "data.sources.chat.chat_template: must be one of auto, tokenizer, plain", {"chat.jsonl": TALK * 40}),
    ("messages_column_missing", "train.py", chat(messages="turns"), "data.sources.chat.messages: no column 'turns'", {"chat.jsonl": TALK * 40}),
    ("messages_no_assistant", "train.py", chat(messages="messages"), "data.sources.chat.messages: ", {"chat.jsonl": TALK * 39 + '{"messages": [{"role": "user", "content": "x"}]}\n'}),
    ("dataset_unknown_split", "train.py", [*CHAT, "data.sources={chat: {dataset: {tmp}/ds, messages: messages, splits: {test: holdout}}}"], "data.sources.chat.splits.test: no split 'holdout'", {}),
    (
        "causal_lm_without_lm_head",
        "train.py",
        [*CHAT, "model=hf", "model.name_or_path=minilm", "data.sources={chat: {path: {tmp}/chat.jsonl, messages: messages}}"],
        "model: task 'chat' is causal_lm",
        {"chat.jsonl": TALK * 40},
    ),
    ("generate_from_a_classifier", "predict.py", ["ckpt_path={run}", "texts=[hello]", "max_new_tokens=5"], "max_new_tokens: this model has no LM head", {}),
]
CASES = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.fixture
def saved_dataset(tmp_path):
    import datasets

    rows = [[{"role": "user", "content": "ab"}, {"role": "assistant", "content": "ba"}]] * 20
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"messages": rows})}).save_to_disk(str(tmp_path / "ds"))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_generation_input_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path, saved_dataset):
    check_bad_input(case, finished_run, tmp_path)
