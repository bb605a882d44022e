"""Your own data: plain ``data.sources`` mappings, joint sources, paths from the start directory, and
inputs that must not go silently wrong (non-finite labels, duplicated headers, too few rows)."""

from __future__ import annotations

import pytest

from peftlab.config.open_mappings import open_mapping_overrides
from peftlab.data import LocalFileSource, MultiTaskDataModule, TextFileSource
from peftlab.data.source_splits import min_rows
from peftlab.errors import ConfigError
from text_helpers import sentence, tiny_tokenizer_dir, write_csv

MOODS = ["neg", "neutral", "pos"]
TASKS = [{"name": "mood", "type": "classification", "num_classes": 3}, {"name": "stars", "type": "regression"}]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return str(tiny_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _reviews(path, n=300):
    """One CSV with a text and two label columns."""
    return write_csv(path, ["review", "mood", "stars"], [[sentence(i, 3 + i % 5), MOODS[i % 3], (i % 5) + 0.5] for i in range(n)])


def _error(fn) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        fn()
    assert "\n" not in str(err.value)
    return err.value


def _sizes(dm) -> dict[str, int]:
    return {s: len(dm.splits[s]) for s in ("train", "val", "test")}


def test_tasks_sharing_a_file_read_it_once_as_one_joint_source(tmp_path, tokenizer_dir):
    path = _reviews(tmp_path / "reviews.csv")
    sources = {"mood": {"path": str(path), "text": "review", "label": "mood", "classes": MOODS}, "stars": {"path": str(path), "text": "review", "label": "stars"}}
    dm = MultiTaskDataModule(tasks=TASKS, sources=sources, tokenizer=tokenizer_dir, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    assert sum(_sizes(dm).values()) == 300, "300 rows, not 600"
    for split in ("train", "val", "test"):
        assert bool(dm.splits[split].task_mask.all()), "every row carries both labels"
    rows = dm.splits["test"][list(range(len(dm.splits["test"])))]
    assert set(rows["y"][:, 0].tolist()) <= {0.0, 1.0, 2.0} and set(rows["y"][:, 1].tolist()) <= {0.5, 1.5, 2.5, 3.5, 4.5}
    # source objects (or other text columns) stay separate sources: each read on its own
    objects = {"mood": TextFileSource(str(path), text="review", label="mood", classes=MOODS), "stars": TextFileSource(str(path), text="review", label="stars")}
    separate = MultiTaskDataModule(tasks=TASKS, sources=objects, tokenizer=tokenizer_dir, val_fraction=0.1, test_fraction=0.1)
    separate.setup()
    assert sum(_sizes(separate).values()) == 600


def test_relative_paths_are_taken_from_the_start_directory_and_errors_show_them_absolute(tmp_path, tokenizer_dir, monkeypatch):
    (tmp_path / "mine").mkdir()
    _reviews(tmp_path / "mine" / "reviews.csv", 60)
    monkeypatch.chdir(tmp_path)
    sources = {"mood": {"path": "mine/reviews.csv", "text": "review", "label": "mood", "classes": MOODS}}
    dm = MultiTaskDataModule(tasks=TASKS[:1], sources=sources, tokenizer=tokenizer_dir)
    dm.setup()
    assert sum(_sizes(dm).values()) == 60
    missing = {"mood": {"path": "mine/nope.csv", "text": "review", "label": "mood"}}
    err = _error(MultiTaskDataModule(tasks=TASKS[:1], sources=missing, tokenizer=tokenizer_dir).setup)
    assert str(err) == f"{tmp_path / 'mine' / 'nope.csv'}: no such file"
    err = _error(lambda: LocalFileSource("mine/nope.csv", ["f0"], ["y"]).load())
    assert str(tmp_path / "mine" / "nope.csv") in str(err)


def test_a_mapping_with_an_unknown_setting_or_no_path_is_one_line(tokenizer_dir):
    err = _error(lambda: MultiTaskDataModule(tasks=TASKS[:1], sources={"mood": {"pth": "x.csv"}}).setup())
    assert err.key == "data.sources.mood.pth" and "did you mean data.sources.mood.path?" in str(err)
    assert _error(lambda: MultiTaskDataModule(tasks=TASKS[:1], sources={"mood": {"text": "review"}}).setup()).key == "data.sources.mood.path"
    assert _error(lambda: MultiTaskDataModule(tasks=TASKS[:1], sources={"mood": {"path": "x.csv", "classes": "neg"}}).setup()).key == "data.sources.mood.classes"


def test_sources_overrides_need_no_plus_and_a_mapping_replaces_the_default_whole(tmp_path):
    from conftest import compose_config

    def sources(*overrides):
        (tmp_path / "run").mkdir(exist_ok=True)
        cfg = compose_config(open_mapping_overrides(["data=text_files", *overrides]), tmp_path / "run")
        return {k: dict(v) for k, v in cfg.data.sources.items()}

    added = sources("data.sources.topic.path=my.csv", "data.sources.topic.label=topic")
    assert set(added) == {"sentiment", "confidence", "topic"} and added["topic"] == {"path": "my.csv", "label": "topic"}
    assert sources("data.sources.sentiment.path=x.csv")["sentiment"]["path"] == "x.csv"
    replaced = sources("data.sources={topic: {path: my.csv}, stars: {path: my.csv, label: stars}}", "data.sources.topic.text=review")
    assert replaced == {"topic": {"path": "my.csv", "text": "review"}, "stars": {"path": "my.csv", "label": "stars"}}
    assert open_mapping_overrides(["+data.sources.a.path=x", "data.batch_size=4", "-m"]) == ["+data.sources.a.path=x", "data.batch_size=4", "-m"]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e39", "-3.5e38"])
def test_non_finite_labels_are_refused_with_file_row_and_column(tmp_path, value):
    path = write_csv(tmp_path / "scores.csv", ["text", "score"], [["good movie", "0.5"], ["bad plot", value], ["fine", "1"]])
    err = _error(lambda: TextFileSource(str(path), label="score").load())
    assert str(err).startswith(f"{path}: data row 2, column 'score': label '{value}' is not a finite number")
    local = write_csv(tmp_path / "local.csv", ["f0", "y"], [["1", "0"], ["2", "0"], ["3", value]])
    err = _error(lambda: LocalFileSource(str(local), ["f0"], ["y"]).load())
    assert str(err) == f"{local}: data row 3, column 'y': '{value}' is not a finite number"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0])
def test_temperature_must_be_a_finite_positive_number(value):
    err = _error(lambda: MultiTaskDataModule(tasks=TASKS[:1], sources={"mood": {"path": "x.csv"}}, temperature=value))
    assert err.key == "data.temperature"


def test_a_duplicated_header_is_refused_naming_the_file_and_column(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,label,label\ngood,1,0\nbad,0,1\n")
    err = _error(lambda: TextFileSource(str(path)).load())
    assert str(err) == f"{path}: the header names column 'label' twice; rename one of them"
    tsv = tmp_path / "dup.tsv"
    tsv.write_text("text\ttext\tlabel\ngood\tfine\t1\n")
    assert "column 'text' twice" in str(_error(lambda: TextFileSource(str(tsv)).load()))
    local = tmp_path / "local.csv"
    local.write_text("f0,y,y\n1,0,1\n")
    assert str(_error(lambda: LocalFileSource(str(local), ["f0"], ["y"]).load())) == f"{local}: the header names column 'y' twice; rename one of them"


def test_too_few_rows_name_the_file_and_the_minimum(tmp_path, tokenizer_dir):
    need = min_rows(0.1, 0.1)
    assert need == 6  # ceil(0.2 n) >= 2 held-out rows (one val, one test) and a train row
    for n, ok in ((1, False), (need - 1, False), (need, True)):
        path = write_csv(tmp_path / f"rows{n}.csv", ["text", "label"], [[sentence(i, 3), i % 2] for i in range(n)])
        dm = MultiTaskDataModule(tasks=[{"name": "t", "num_classes": 2}], sources={"t": {"path": str(path)}}, tokenizer=tokenizer_dir, val_fraction=0.1, test_fraction=0.1)
        if ok:
            dm.setup()
            assert sum(_sizes(dm).values()) == need and min(_sizes(dm).values()) >= 1
        else:
            err = _error(dm.setup)
            assert str(err).startswith(f"{path}: {n} row(s) are too few") and str(err).endswith(f"it needs at least {need} rows")
    assert min_rows(0.1, 0.1, ["val"]) < need  # with a validation file only test is carved out
