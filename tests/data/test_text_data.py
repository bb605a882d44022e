"""Text data: text files (CSV/TSV/JSONL/parquet) per task, tokenisation cache, dynamic padding, GLUE from disk, the tweets corpus."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from peftlab.data import GlueSource, MultiTaskDataModule, TextFileSource, TweetsSource
from peftlab.data.batching import bucket_by_length
from peftlab.errors import ConfigError
from text_helpers import sentence, tiny_tokenizer_dir, write_csv, write_jsonl

CLASSES = ["neg", "pos"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return str(tiny_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _sentiment_csv(path, n=60):
    rows = [[sentence(i, 2 + i % 9), CLASSES[i % 2]] for i in range(n)]
    return write_csv(path, ["text", "label"], rows)


def _pairs_jsonl(path, n=50):
    return write_jsonl(path, [{"a": sentence(i, 3), "b": sentence(i + 1, 1 + i % 4), "score": i / 10} for i in range(n)])


TASKS = [
    {"name": "sent", "num_classes": 2, "metrics": ["acc", "f1"]},
    {"name": "sim", "num_classes": 0, "metric": "pearson", "metrics": ["pearson", "spearman"]},
]


def _datamodule(tmp_path, tokenizer_dir, **kwargs):
    sources = {
        "sent": TextFileSource(str(_sentiment_csv(tmp_path / "sent.csv")), classes=CLASSES),
        "sim": TextFileSource(str(_pairs_jsonl(tmp_path / "sim.jsonl")), text="a", text_pair="b", label="score"),
    }
    args = dict(tasks=TASKS, sources=sources, tokenizer=tokenizer_dir, batch_size=8, val_fraction=0.2, test_fraction=0.2, cache_dir=str(tmp_path / "cache"))
    args.update(kwargs)
    return MultiTaskDataModule(**args)


def test_each_task_reads_its_own_files_and_batches_are_padded_per_batch(tmp_path, tokenizer_dir):
    dm = _datamodule(tmp_path, tokenizer_dir, mode="mixed")
    dm.setup()
    train, test = dm.splits["train"], dm.splits["test"]
    assert len(train) + len(dm.splits["val"]) + len(test) == 110
    assert train.task_mask.sum(0).tolist() == [36, 30]  # 60 and 50 rows minus 20 % + 20 %
    assert bool((train.task_mask.sum(1) == 1).all())
    lengths = train.x.lengths
    for batch in dm.train_dataloader():
        inputs, mask = batch["inputs"], batch["task_mask"]
        assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
        assert int(mask.any(0).sum()) == 1, "mixed batches hold one task"
        ids, att = inputs["input_ids"], inputs["attention_mask"]
        assert ids.shape == att.shape == inputs["token_type_ids"].shape and ids.shape[0] <= 8
        assert int(att.sum(1).max()) == ids.shape[1], "padded to the longest row of the batch, no further"
        assert bool((ids[att == 0] == 0).all()), "padding uses the tokenizer's pad id"
        assert bool((ids[:, 0] == 2).all()), "every row starts with [CLS]"
    assert int(lengths.max()) > int(lengths.min())
    # sentence pairs get segment ids 1 on the second text; single texts none
    sim_row = int(torch.nonzero(train.task_mask[:, 1])[0])
    batch = train[[sim_row]]
    assert int(batch["inputs"]["token_type_ids"].max()) == 1 and float(batch["y"][0, 0]) == 0.0
    sent_row = int(torch.nonzero(train.task_mask[:, 0])[0])
    assert int(train[[sent_row]]["inputs"]["token_type_ids"].max()) == 0


def test_class_names_map_to_ids_and_regression_keeps_values(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    dm = _datamodule(tmp_path, tokenizer_dir, mode="joint")
    dm.setup()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = {sentence(i, 2 + i % 9): i for i in range(60)}
    pairs: dict[tuple[str, str], list[float]] = {}  # (the same pair of texts may recur with another score)
    for i in range(50):
        pairs.setdefault((sentence(i, 3), sentence(i + 1, 1 + i % 4)), []).append(i / 10)
    for split in ("train", "val", "test"):
        data = dm.splits[split]
        batch = data[list(range(len(data)))]
        for r in range(len(data)):
            ids = batch["inputs"]["input_ids"][r][batch["inputs"]["attention_mask"][r].bool()]
            segs = tok.decode(ids, skip_special_tokens=False).replace("[CLS] ", "").split(" [SEP]")
            if bool(batch["task_mask"][r, 0]):
                i = texts[segs[0]]
                assert float(batch["y"][r, 0]) == i % 2 and not bool(batch["task_mask"][r, 1])
            else:
                scores = pairs[(segs[0], segs[1].strip())]
                assert min(abs(float(batch["y"][r, 1]) - v) for v in scores) < 1e-6


def test_tokenisation_is_cached_and_reused(tmp_path, tokenizer_dir):
    dm = _datamodule(tmp_path, tokenizer_dir)
    dm.setup()
    files = sorted((tmp_path / "cache").glob("tokens-*.safetensors"))
    assert len(files) == 2  # one per source
    stamps = [f.stat().st_mtime_ns for f in files]
    again = _datamodule(tmp_path, tokenizer_dir)
    again.setup()
    assert sorted((tmp_path / "cache").glob("tokens-*.safetensors")) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps, "the second load read the cache instead of re-tokenising"
    assert torch.equal(again.splits["train"].x.ids, dm.splits["train"].x.ids)
    shorter = _datamodule(tmp_path, tokenizer_dir, max_length=4)
    shorter.setup()
    assert len(list((tmp_path / "cache").glob("tokens-*.safetensors"))) == 4, "max_length is part of the cache key"
    assert int(shorter.splits["train"].x.lengths.max()) == 4


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_tsv_and_parquet_with_integer_labels_and_separate_split_files(tmp_path, tokenizer_dir, fmt):
    import pandas as pd

    def frame(n, offset):
        return pd.DataFrame({"sentence": [sentence(i + offset, 4) for i in range(n)], "label": [(i + offset) % 3 for i in range(n)]})

    paths = {}
    for split, n, offset in (("train", 30, 0), ("validation", 9, 100), ("test", 12, 200)):
        paths[split] = str(tmp_path / f"{split}.{fmt}")
        df = frame(n, offset)
        df.to_csv(paths[split], sep="\t", index=False) if fmt == "tsv" else df.to_parquet(paths[split])
    source = TextFileSource(paths["train"], paths["validation"], paths["test"], text="sentence")
    dm = MultiTaskDataModule(tasks=[{"name": "t", "num_classes": 3}], sources={"t": source}, tokenizer=tokenizer_dir, batch_size=4)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [30, 9, 12]
    assert dm.splits["test"].y[:, 0].tolist() == [float((i + 200) % 3) for i in range(12)]
    assert dm.input_shape is None


def test_text_that_is_not_utf8_is_read_with_replacement_characters(tmp_path, tokenizer_dir):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"text,label\n" + b"".join(b"caf\xe9 good movie %d,pos\n" % i if i == 3 else b"good movie,neg\n" for i in range(20)))
    table = TextFileSource(str(path), classes=CLASSES).read(path)
    assert table.x.texts[3] == "caf\ufffd good movie 3"
    assert table.labels["label"][:4].tolist() == [0.0, 0.0, 0.0, 1.0]


def _error(fn) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        fn()
    assert "\n" not in str(err.value)
    return err.value


def test_bad_text_inputs_are_one_line_errors(tmp_path, tokenizer_dir):
    good = _sentiment_csv(tmp_path / "good.csv")
    err = _error(lambda: TextFileSource(str(tmp_path / "missing.csv")).load())
    assert err.key.endswith("missing.csv") and "no such file" in str(err)
    err = _error(lambda: TextFileSource(str(good), text="sentence").load())
    assert "no column(s) ['sentence']" in str(err) and "good.csv" in str(err)
    err = _error(lambda: TextFileSource(str(good), classes=["neg", "neutral"]).load())
    assert "data row 2, column 'label'" in str(err) and "'pos' is not one of the declared classes" in str(err)
    nan_file = write_csv(tmp_path / "nan.csv", ["text", "label"], [["good", "1"], ["bad", ""], ["fine", "0"]])
    err = _error(lambda: TextFileSource(str(nan_file)).load())
    assert "nan.csv" in str(err) and "data row 2, column 'label'" in str(err) and "missing" in str(err)
    nan_json = write_jsonl(tmp_path / "nan.jsonl", [{"text": "good", "label": 1.5}, {"text": "bad", "label": None}])
    assert "data row 2" in str(_error(lambda: TextFileSource(str(nan_json)).load()))
    # a label outside [0, num_classes) of the task (integer labels, no classes declared)
    ints = write_csv(tmp_path / "ints.csv", ["text", "label"], [[sentence(i, 3), i % 4] for i in range(20)])
    dm = MultiTaskDataModule(tasks=[{"name": "t", "num_classes": 3}], sources={"t": TextFileSource(str(ints))}, tokenizer=tokenizer_dir)
    err = _error(dm.setup)
    assert err.key == "data.tasks[0].num_classes" and "data.sources.t (train split) row 4 has 3" in str(err)
    # classes that do not match num_classes
    dm = MultiTaskDataModule(tasks=[{"name": "t", "num_classes": 3}], sources={"t": TextFileSource(str(good), classes=CLASSES)}, tokenizer=tokenizer_dir)
    assert _error(dm.setup).key == "data.tasks[0].num_classes"
    # texts without a tokenizer, and a tokenizer that does not exist
    dm = MultiTaskDataModule(tasks=[{"name": "t"}], sources={"t": TextFileSource(str(good), classes=CLASSES)})
    assert _error(dm.setup).key == "data.tokenizer"
    dm = MultiTaskDataModule(tasks=[{"name": "t"}], sources={"t": TextFileSource(str(good), classes=CLASSES)}, tokenizer=str(tmp_path / "nope"))
    assert _error(dm.setup).key == "data.tokenizer"
    # a source for a task that does not exist; a task with no source at all
    assert _error(lambda: MultiTaskDataModule(tasks=[{"name": "t"}], sources={"x": None})).key == "data.sources"
    assert _error(lambda: MultiTaskDataModule(tasks=[{"name": "t"}])).key == "data.source"


def test_length_buckets_group_similar_lengths_and_keep_every_row():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 100, (1000,), generator=gen)
    order = torch.randperm(1000, generator=gen)
    bucketed = bucket_by_length(order, lengths, 10, gen)
    assert sorted(bucketed.tolist()) == list(range(1000))
    padded = lambda o: sum(int(lengths[b].max()) * len(b) for b in torch.split(o, 10))  # noqa: E731
    assert padded(bucketed) < 0.7 * padded(order)


def test_bucketed_training_batches_cover_the_split_once(tmp_path, tokenizer_dir):
    dm = _datamodule(tmp_path, tokenizer_dir, mode="joint", bucket_by_length=True)
    seen = [i for batch in dm.train_dataloader() for i in batch["y"][:, 1].tolist()]
    assert len(seen) == len(dm.splits["train"])


def _save_glue(root, name, columns, n_train, n_val, label):
    from datasets import Dataset, DatasetDict

    def split(n, offset):
        data = {c: [sentence(i + offset, 3 + k) for i in range(n)] for k, c in enumerate(columns)}
        data["label"] = [label(i) for i in range(n)]
        return Dataset.from_dict(data)

    splits = {"train": split(n_train, 0)}
    if name == "mnli":
        splits["validation_matched"], splits["validation_mismatched"] = split(n_val, 100), split(n_val + 1, 200)
    else:
        splits["validation"] = split(n_val, 100)
    DatasetDict(splits).save_to_disk(str(root / name))


def test_glue_from_local_copies_uses_validation_as_test(tmp_path, tokenizer_dir):
    _save_glue(tmp_path, "cola", ["sentence"], 40, 10, lambda i: i % 2)
    _save_glue(tmp_path, "stsb", ["sentence1", "sentence2"], 30, 8, lambda i: i / 6)
    _save_glue(tmp_path, "mnli", ["premise", "hypothesis"], 30, 6, lambda i: i % 3)
    tasks = [
        {"name": "cola", "label": "cola", "num_classes": 2, "metric": "mcc", "metrics": ["mcc", "acc"]},
        {"name": "stsb", "label": "stsb", "num_classes": 0, "metric": "pearson", "metrics": ["pearson", "spearman"]},
        {"name": "mnli", "label": "mnli", "num_classes": 3},
    ]

    def build(**kw):
        dm = MultiTaskDataModule(GlueSource(tasks, local_dir=str(tmp_path), **kw), tasks, mode="mixed", val_fraction=0.2, tokenizer=tokenizer_dir, batch_size=4)
        dm.setup()
        return dm

    dm = build()
    assert dm.splits["test"].task_mask.sum(0).tolist() == [10, 8, 6]  # GLUE's validation splits
    assert dm.splits["val"].task_mask.sum(0).tolist() == [8, 6, 6]  # 20 % of each task's train (stratified by task)
    assert dm.splits["train"].task_mask.sum(0).tolist() == [32, 24, 24]
    stsb = dm.splits["test"].y[dm.splits["test"].task_mask[:, 1], 1]
    assert sorted(stsb.tolist()) == pytest.approx([i / 6 for i in range(8)])
    assert build(mnli_test="validation_mismatched").splits["test"].task_mask.sum(0).tolist() == [10, 8, 7]
    with pytest.raises(ConfigError, match="data.source.local_dir"):
        MultiTaskDataModule(GlueSource(tasks[:1], local_dir=str(tmp_path / "none")), tasks[:1], tokenizer=tokenizer_dir).setup()
    with pytest.raises(ConfigError, match="GLUE has no task"):
        GlueSource([{"name": "x", "label": "imdb"}])


def test_tweets_corpus_has_the_documented_rows(tmp_path):
    table = TweetsSource(subset=None, cache_dir=str(tmp_path)).load()
    assert len(table) == 38_158
    sentiment, confidence = table.labels["sentiment"], table.labels["confidence"]
    assert torch.bincount(sentiment.long()).tolist() == [16_186, 15_018, 6_954]  # negative, neutral, positive
    assert int(confidence.isnan().sum()) == 5_460
    known = confidence[~confidence.isnan()]
    assert 0 < float(known.min()) and float(known.max()) == 1.0
    assert any("\ufffd" in t for t in table.x.texts), "some tweets hold bytes that are not UTF-8"
    # the fixed subset: the same rows whatever the run, stratified by sentiment and by having a confidence
    sub = TweetsSource(subset=4000, cache_dir=str(tmp_path)).load()
    assert len(sub) == 4000 and sub.x.texts == TweetsSource(subset=4000, cache_dir=str(tmp_path)).load().x.texts
    share = torch.bincount(sub.labels["sentiment"].long()).float() / 4000
    assert torch.allclose(share, torch.bincount(sentiment.long()).float() / len(table), atol=0.002)
    assert abs(float(sub.labels["confidence"].isnan().float().mean()) - 5460 / 38158) < 0.002
    with pytest.raises(ConfigError, match="data.source.subset"):
        TweetsSource(subset=0)


def test_tweets_joint_batches_mask_the_missing_confidence(tmp_path, tokenizer_dir):
    tasks = [{"name": "sentiment", "label": "sentiment", "num_classes": 3}, {"name": "confidence", "label": "confidence", "num_classes": 0, "metric": "pearson"}]
    dm = MultiTaskDataModule(TweetsSource(subset=600, cache_dir=str(tmp_path)), tasks, tokenizer=tokenizer_dir, batch_size=600)
    dm.setup()
    train = dm.splits["train"]
    assert bool(train.task_mask[:, 0].all())
    unlabelled = ~train.task_mask[:, 1]
    assert 0 < int(unlabelled.sum()) < len(train) and bool((train.y[unlabelled, 1] == 0).all())
    assert not math.isnan(float(train.y.sum()))
    mixed = MultiTaskDataModule(TweetsSource(subset=600, cache_dir=str(tmp_path)), tasks, mode="mixed", tokenizer=tokenizer_dir)
    mixed.setup()
    per_task = mixed.splits["train"].task_mask.sum(0)
    assert bool((mixed.splits["train"].task_mask.sum(1) == 1).all())
    assert int(per_task[0]) > int(per_task[1]), "rows without a confidence serve sentiment only"


def test_text_data_configs_compose_and_load(tmp_path, tokenizer_dir):
    """data=text_files, data=glue and data=tweets as `python train.py` composes them, pointed at local files."""
    import runpy

    from hydra.utils import instantiate

    from conftest import compose_config

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "tweets_to_text_files.py"))
    out = tmp_path / "tweets_text"
    assert script["main"](["--rows", "300", "--out", str(out)]) == 0
    stamp = (out / "sentiment.csv").stat().st_mtime_ns
    assert script["main"](["--rows", "500", "--out", str(out)]) == 0
    assert (out / "sentiment.csv").stat().st_mtime_ns == stamp, "existing files are not overwritten"
    _save_glue(tmp_path / "glue", "cola", ["sentence"], 40, 10, lambda i: i % 2)
    _save_glue(tmp_path / "glue", "stsb", ["sentence1", "sentence2"], 30, 8, lambda i: i / 6)
    common = [f"+model.name_or_path={tokenizer_dir}", f"data.cache_dir={tmp_path / 'cache'}"]
    runs = {
        "text_files": [f"data.sources.sentiment.path={out / 'sentiment.csv'}", f"data.sources.confidence.path={out / 'confidence.jsonl'}"],
        "glue": [
            f"data.source.local_dir={tmp_path / 'glue'}",
            "data.tasks=[{name: cola, label: cola, num_classes: 2, metric: mcc, metrics: [mcc, acc]},{name: stsb, label: stsb, num_classes: 0, metric: pearson, metrics: [pearson, spearman]}]",
        ],
        "tweets": ["data.source.subset=300", f"data.source.cache_dir={tmp_path}"],
    }
    for i, (name, overrides) in enumerate(runs.items()):
        (tmp_path / f"run{i}").mkdir()
        cfg = compose_config([f"data={name}", *common, *overrides], tmp_path / f"run{i}")
        dm = instantiate(cfg.data)
        dm.setup()
        batch = next(iter(dm.val_dataloader()))
        assert batch["inputs"]["input_ids"].shape == batch["inputs"]["attention_mask"].shape
        assert batch["y"].shape[1] == len(cfg.data.tasks) == len(dm.tasks)
        assert dm.tokenizer.name_or_path == tokenizer_dir
        if name == "text_files":  # every tweet of the sample has a sentiment, ~86 % a confidence
            sizes = sum(dm.splits[s].task_mask.sum(0) for s in ("train", "val", "test")).tolist()
            assert sizes[0] == 300 and 240 < sizes[1] < 280
