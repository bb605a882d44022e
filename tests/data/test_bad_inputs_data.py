"""Bad-input catalogue, data: non-finite labels, duplicated headers, too few rows, bad ``data.*`` values,
and your own files' mistakes (relative paths, settings), each one line naming the file or key.

The harness (tests/bad_input_harness.py) runs the real ``train.py`` from the repository root:
exit status 2, exactly one ``error:`` line, no traceback, nothing in a finished run changed.
Also here: a token cache file that does not unpickle is rebuilt, not an error.
"""

from __future__ import annotations

import pytest

from bad_input_harness import LOCAL, ROOT, TINY, check_bad_input, run_command

HEADER = "f0,f1,y_a,y_b\n"
ROWS = "".join(f"{i % 7},{i % 5},{i % 2},{i * 0.1}\n" for i in range(40))
TEXTS = "".join(f"good movie number {i},{i % 3}\n" for i in range(40))
# one regression task `t` reading {tmp}/s.csv with columns text, label (MiniLM: offline, packaged)
TEXT = ["data=text_files", "model=hf", "model.name_or_path=minilm", "model.pooling=mean", "data.tasks=[{name: t, type: regression}]", "data.sources={t: {path: {tmp}/s.csv}}"]

# (id, script, args (with {tmp}), what the error line must name, files to write {name: content})
CASES = [
    ("local_label_inf", "train.py", [*LOCAL, "data.source.path={tmp}/inf.csv"], "inf.csv: data row 41, column 'y_b'", {"inf.csv": HEADER + ROWS + "1,2,1,inf\n"}),
    ("local_label_1e39", "train.py", [*LOCAL, "data.source.path={tmp}/big.csv"], "big.csv: data row 41, column 'y_b'", {"big.csv": HEADER + ROWS + "1,2,1,1e39\n"}),
    ("local_feature_nan", "train.py", [*LOCAL, "data.source.path={tmp}/nanf.csv"], "nanf.csv: data row 41, column 'f1'", {"nanf.csv": HEADER + ROWS + "1,nan,1,0.5\n"}),
    ("local_duplicated_header", "train.py", [*LOCAL, "data.source.path={tmp}/dup.csv"], "dup.csv: the header names column 'y_b' twice", {"dup.csv": "f0,f1,y_a,y_b,y_b\n1,2,0,0.5,9\n"}),
    ("local_one_row", "train.py", [*LOCAL, "data.source.path={tmp}/one.csv"], "one.csv: 1 row(s) are too few", {"one.csv": HEADER + "1,2,0,0.5\n"}),
    ("temperature_nan", "train.py", ["data.temperature=nan"], "data.temperature", {}),
    ("temperature_inf", "train.py", ["data.temperature=inf"], "data.temperature", {}),
    ("temperature_negative", "train.py", ["data.temperature=-2"], "data.temperature", {}),
    ("text_label_inf", "train.py", TEXT, "s.csv: data row 41, column 'label'", {"s.csv": "text,label\n" + TEXTS + "bad plot,inf\n"}),
    ("text_label_1e39", "train.py", TEXT, "s.csv: data row 41, column 'label'", {"s.csv": "text,label\n" + TEXTS + "bad plot,-1e39\n"}),
    ("text_duplicated_header", "train.py", TEXT, "s.csv: the header names column 'label' twice", {"s.csv": "text,label,label\n" + TEXTS.replace("\n", ",0\n")}),
    ("text_one_row", "train.py", TEXT, "s.csv: 1 row(s) are too few", {"s.csv": "text,label\ngood movie,1\n"}),
    ("text_relative_missing_path", "train.py", [*TEXT, "data.sources.t.path=no_such_dir/mine.csv"], f"{ROOT / 'no_such_dir' / 'mine.csv'}: no such file", {}),
    ("text_unknown_setting", "train.py", [*TEXT, "data.sources.t.lable=score"], "data.sources.t.lable", {"s.csv": "text,label\n" + TEXTS}),
    ("text_source_for_no_task", "train.py", [*TEXT, "data.sources.topic.path={tmp}/s.csv"], "data.sources", {"s.csv": "text,label\n" + TEXTS}),
]
CASES = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_data_input_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path):
    check_bad_input(case, finished_run, tmp_path)


@pytest.mark.slow
def test_a_token_cache_that_does_not_unpickle_is_rebuilt_not_an_error(tmp_path):
    """A real text run; every cache file is then replaced by a crafted pickle: the next run rebuilds
    them with a one-line note, runs no code, and completes."""

    (tmp_path / "s.csv").write_text("text,label\n" + TEXTS)
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    args = [*TINY, *(a.replace("{tmp}", str(tmp_path)) for a in TEXT), f"data.cache_dir={cache}", "data.batch_size=8"]
    first = run_command("train.py", args, tmp_path / "logs1")
    assert first.returncode == 0, first.stderr[-3000:]
    files = sorted(cache.glob("tokens-*.safetensors"))
    assert files
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    for path in files:
        path.write_bytes(_pickle_that_runs(code))
    second = run_command("train.py", args, tmp_path / "logs2")
    assert second.returncode == 0, second.stderr[-3000:]
    notes = [line for line in (second.stdout + second.stderr).splitlines() if "token cache" in line and "rebuilt" in line]
    assert len(notes) == len(files) and str(files[0]) in "\n".join(notes)
    assert not marker.exists(), "a crafted cache file ran code"
    assert sorted(cache.glob("tokens-*.safetensors")) == files


def _pickle_that_runs(code: str) -> bytes:
    """Pickle bytes that would run ``code`` when unpickled (the marker proves whether they ran)."""
    import pickle

    class Runs:
        def __reduce__(self):
            return (exec, (code,))

    return pickle.dumps(Runs())
