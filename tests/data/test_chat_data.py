"""Chat rows of causal-LM tasks: a ``messages`` column rendered with the tokenizer's chat template (or
the plain template), labels on the assistant turns only, checked against hand-built ids and masks."""

from __future__ import annotations

import json

import pytest

from peftlab.data import Conversations, MultiTaskDataModule
from peftlab.data.char_tokenizer import CHARS, build_char_tokenizer
from peftlab.data.tokenize import load_tokenizer
from peftlab.data.tokenize_chat import tokenize_conversations
from peftlab.errors import ConfigError
from text_helpers import write_csv, write_jsonl

LM = [{"name": "chat", "type": "causal_lm"}]
TEMPLATE = "{% for m in messages %}{% if loop.first %}<s>{% endif %}({{ m['role'] }}){{ m['content'] }}{% if m['role'] == 'assistant' %}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}(assistant){% endif %}"
TALK = [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "ba"}, {"role": "user", "content": "cd"}, {"role": "assistant", "content": "dc"}]
BOS, EOS = 1, 2


def enc(text: str) -> list[int]:
    """The chars tokenizer's ids written by hand: <unk> (3) for a character outside its alphabet."""
    return [4 + CHARS.index(c) if c in CHARS else 3 for c in text]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def templated(tmp_path):
    tok = build_char_tokenizer()
    tok.chat_template = TEMPLATE
    tok.save_pretrained(tmp_path / "templated")
    return str(tmp_path / "templated")


def rows(tokens, index=0):
    batch = tokens.batch([index])
    ids, labels = batch["input_ids"][0].tolist(), batch["lm_labels"][0].tolist()
    return ids, [label != -100 for label in labels]


def test_the_tokenizers_chat_template_labels_every_assistant_turn(templated):
    tok = load_tokenizer(templated)
    ids, mask = rows(tokenize_conversations(Conversations([TALK]), tok, max_length=64))
    want = [BOS, *enc("(user)ab(assistant)"), *enc("ba"), EOS, *enc("(user)cd(assistant)"), *enc("dc"), EOS]
    want_mask = [False] * 20 + [True] * 3 + [False] * 19 + [True] * 3
    assert ids == want and mask == want_mask


def test_template_text_after_the_end_of_sequence_token_is_not_labelled(tmp_path):
    tok = build_char_tokenizer()
    tok.chat_template = TEMPLATE.replace("</s>{% endif %}", "</s>..{% endif %}")  # e.g. a newline after <|im_end|>
    tok.save_pretrained(tmp_path / "dots")
    ids, mask = rows(tokenize_conversations(Conversations([TALK[:2]]), load_tokenizer(str(tmp_path / "dots")), max_length=64))
    assert ids == [BOS, *enc("(user)ab(assistant)"), *enc("ba"), EOS, *enc("..")]
    assert mask == [False] * 20 + [True] * 3 + [False] * 2


def test_without_a_template_the_plain_one_is_used_and_eos_ends_each_reply():
    tok = load_tokenizer("chars")
    tokens = tokenize_conversations(Conversations([[{"role": "system", "content": "be nice"}, *TALK]]), tok, max_length=64)
    ids, mask = rows(tokens)
    head = [BOS, *enc("system: be nice\n"), *enc("user: ab\n"), *enc("assistant: ")]
    middle = [*enc("user: cd\n"), *enc("assistant: ")]
    assert ids == [*head, *enc("ba"), EOS, *middle, *enc("dc"), EOS]
    assert mask == [False] * len(head) + [True] * 3 + [False] * len(middle) + [True] * 3


def test_asking_for_the_tokenizers_template_when_it_has_none_is_one_line():
    with pytest.raises(ConfigError, match=r"^data.sources.chat.chat_template: is 'tokenizer' but the tokenizer .* has no chat template; use auto or plain"):
        tokenize_conversations(Conversations([TALK], "tokenizer", "data.sources.chat"), load_tokenizer("chars"), 64)
    with pytest.raises(ConfigError, match=r"^data.source.chat_template: must be one of auto, tokenizer, plain; got 'jinja'$"):
        tokenize_conversations(Conversations([TALK], "jinja"), load_tokenizer("chars"), 64)


def test_a_long_conversation_loses_tokens_from_the_left(caplog):
    tokens = tokenize_conversations(Conversations([TALK]), load_tokenizer("chars"), max_length=8)
    ids, mask = rows(tokens)
    assert ids == [*enc("ant: "), *enc("dc"), EOS] and mask == [False] * 5 + [True] * 3
    assert "1 conversation(s) truncated from the left to fit data.max_length=8" in caplog.text


def test_a_messages_column_of_jsonl_and_csv_files_trains_on_assistant_turns(tmp_path, templated):
    talks = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i % 5}"}] for i in range(40)]
    jsonl = write_jsonl(tmp_path / "chat.jsonl", [{"messages": t} for t in talks])
    csv = write_csv(tmp_path / "chat.csv", ["conversation"], [[json.dumps(t).replace('"', '""')] for t in talks])
    for sources in ({"chat": {"path": str(jsonl), "messages": "messages"}}, {"chat": {"path": str(csv), "messages": "conversation"}}):
        dm = MultiTaskDataModule(tasks=LM, sources=sources, tokenizer=templated, val_fraction=0.25, test_fraction=0.25, batch_size=8)
        dm.setup()
        batch = next(iter(dm.train_dataloader()))
        labels = batch["lm_labels"]
        assert ((labels != -100).sum(1) == 3).all()  # "a<digit>" + </s>
        first = (labels[0] != -100).nonzero()[0, 0]
        assert batch["inputs"]["input_ids"][0, first - len("(assistant)") : first].tolist() == enc("(assistant)")


@pytest.mark.parametrize(
    "cell, match",
    [
        ([{"role": "user", "content": "hi"}], "row 1: no assistant turn"),
        ([{"role": "user"}], r"row 1: turn \{'role': 'user'\} is not \{role: str, content: str\}"),
        ("plain text", "row 1: not JSON; each cell must be"),
        (5, "row 1: got int; each cell must be"),
    ],
)
def test_bad_messages_cells_and_a_missing_column_are_one_line(tmp_path, cell, match):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": cell}] * 4)
    with pytest.raises(ConfigError, match=f"^data.sources.chat.messages: .*{match}"):
        MultiTaskDataModule(tasks=LM, sources={"chat": {"path": str(path), "messages": "messages"}}, tokenizer="chars").setup()
    with pytest.raises(ConfigError, match=r"^data.sources.chat.messages: no column 'turns' in .*chat.jsonl; columns: \['messages'\]$"):
        MultiTaskDataModule(tasks=LM, sources={"chat": {"path": str(path), "messages": "turns"}}, tokenizer="chars").setup()


def test_a_conversation_to_answer_ends_with_the_generation_prompt_as_training_renders_it(templated):
    """predict.py's chat prompts: the turns as training renders them, then the template's generation
    prompt (the same text that precedes a trained assistant turn), or ``assistant: `` in the plain template."""
    from peftlab.data.tokenize_chat import generation_prompt_ids

    tok = load_tokenizer(templated)
    talk = TALK[:3]
    assert generation_prompt_ids(talk, tok, "tokenizer", "k") == [BOS, *enc("(user)ab(assistant)"), *enc("ba"), EOS, *enc("(user)cd(assistant)")]
    trained, _ = rows(tokenize_conversations(Conversations([TALK]), tok, max_length=64))
    assert trained[: len(generation_prompt_ids(talk, tok, "tokenizer", "k"))] == generation_prompt_ids(talk, tok, "tokenizer", "k")
    plain = generation_prompt_ids(talk, tok, "plain", "k")
    assert plain == [BOS, *enc("user: ab\nassistant: "), *enc("ba"), EOS, *enc("user: cd\nassistant: ")]
