"""``data.sources.<task>.dataset``: a Hugging Face dataset per task (a local save_to_disk folder here),
its split and column mapping, and its bad input as one line."""

from __future__ import annotations

import pytest

from peftlab.data import MultiTaskDataModule
from peftlab.errors import ConfigError

TASKS = [{"name": "echo", "type": "causal_lm"}, {"name": "mood", "type": "classification", "num_classes": 2}]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def saved(tmp_path):
    import datasets

    def split(n, offset):
        return datasets.Dataset.from_dict(
            {
                "question": [f"q{i + offset}=" for i in range(n)],
                "answer": [f"a{(i + offset) % 5}" for i in range(n)],
                "chat": [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i % 5}"}] for i in range(n)],
                "sentence": [f"row {i + offset}" for i in range(n)],
                "polarity": [(i + offset) % 2 for i in range(n)],
            }
        )

    folder = tmp_path / "qa"
    datasets.DatasetDict({"train": split(40, 0), "dev": split(8, 100), "test": split(6, 200)}).save_to_disk(str(folder))
    split(30, 0).save_to_disk(str(tmp_path / "single"))
    return folder


def test_each_task_reads_its_columns_and_named_splits_of_a_saved_dataset(saved):
    sources = {
        "echo": {"dataset": str(saved), "splits": {"train": "train", "validation": "dev", "test": "test"}, "prompt": "question", "response": "answer"},
        "mood": {"dataset": str(saved), "text": "sentence", "label": "polarity"},  # no 'validation' split: carved out of train
    }
    dm = MultiTaskDataModule(tasks=TASKS, sources=sources, tokenizer="chars", val_fraction=0.25, batch_size=8)
    dm.setup()
    counts = {s: dm.splits[s].task_mask.sum(0).tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [40, 30], "val": [8, 10], "test": [6, 6]}
    val = dm.splits["val"]
    rows = val.task_mask[:, 0].nonzero().flatten()
    batch = val.x.batch(rows[:1])
    ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    assert dm.tokenizer.decode(ids, skip_special_tokens=True) == "q100=a0"  # the dev split's first row


def test_a_single_dataset_folder_and_a_messages_column(saved):
    dm = MultiTaskDataModule(tasks=TASKS[:1], sources={"echo": {"dataset": str(saved.parent / "single"), "messages": "chat"}}, tokenizer="chars", batch_size=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert ((batch["lm_labels"] != -100).sum(1) == 3).all()  # "a<digit>" + </s>: the assistant turn only
    assert sum(len(dm.splits[s]) for s in ("train", "val", "test")) == 30


@pytest.mark.parametrize(
    "settings, key, message",
    [
        ({"splits": {"validation": "valid"}}, "data.sources.echo.splits.validation", r"no split 'valid' in .*qa; splits: \['train', 'dev', 'test'\]"),
        ({"splits": {"dev": "dev"}}, "data.sources.echo.splits", r"unknown key\(s\) \['dev'\]; allowed: train, validation, test"),
        ({"prompt": "query"}, "data.sources.echo.prompt", r"no column 'query' in .*qa split 'train'; columns: \['question', 'answer', 'chat', 'sentence', 'polarity'\]"),
        ({"messages": "turns"}, "data.sources.echo.messages", "no column 'turns'"),
        ({"colums": {}}, "data.sources.echo.colums", "not a setting of a task's dataset; allowed: dataset, subset, splits"),
    ],
)
def test_bad_settings_are_one_line(saved, settings, key, message):
    sources = {"echo": {"dataset": str(saved), "prompt": "question", "response": "answer", **settings}}
    with pytest.raises(ConfigError, match=f"^{key}: {message}"):
        MultiTaskDataModule(tasks=TASKS[:1], sources=sources, tokenizer="chars").setup()


def test_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.sources.echo.dataset: no such folder .*nowhere$"):
        MultiTaskDataModule(tasks=TASKS[:1], sources={"echo": {"dataset": str(tmp_path / "nowhere")}}, tokenizer="chars").setup()


def test_a_relative_path_that_is_no_folder_and_no_reachable_hub_dataset_is_one_line(tmp_path, monkeypatch):
    """``data/my_ds`` (a mistyped relative folder) is tried as a hub name: offline that was a raw ConnectionError (review)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"^data.sources.echo.dataset: 'data/my_ds' is neither a local folder .* nor a Hugging Face Hub dataset"):
        MultiTaskDataModule(tasks=TASKS[:1], sources={"echo": {"dataset": "data/my_ds"}}, tokenizer="chars").setup()
