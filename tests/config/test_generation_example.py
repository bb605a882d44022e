"""``python train.py experiment=generation_toy`` as the README writes it (shrunk to a few steps), and its bad input."""

from __future__ import annotations

import pytest

from conftest import metrics_files, read_json, run_cli

SMALL = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.sources.reverse.train=64",
    "data.sources.add.train=64",
    "data.sources.reverse.test=20",
    "data.sources.add.test=20",
]


@pytest.mark.slow
def test_the_generation_example_runs_and_reports_its_generation_metrics(tmp_path):
    proc = run_cli("train.py", "experiment=generation_toy", *SMALL, f"paths.data_dir={tmp_path / 'data'}", log_dir=tmp_path / "logs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = metrics_files(tmp_path / "logs")
    metrics = read_json(path)
    assert metrics["status"] == "completed"
    assert set(metrics["tasks"]) == {"reverse", "add"}
    for values in metrics["tasks"].values():
        assert set(values) == {"exact_match", "perplexity"} and 0.0 <= values["exact_match"] <= 1.0 and values["perplexity"] < 80
    assert (tmp_path / "data" / "synthetic").is_dir()  # the generated files, for the user to look at


@pytest.mark.slow
def test_a_missing_response_column_is_one_line_exit_2(tmp_path):
    (tmp_path / "qa.csv").write_text("prompt,answer\n" + "".join(f"p{i},a{i}\n" for i in range(40)))
    sources = "data.sources={echo: {path: " + str(tmp_path / "qa.csv") + "}}"
    tasks = "data.tasks=[{name: echo, type: causal_lm}]"
    proc = run_cli("train.py", "experiment=generation_toy", *SMALL[:5], tasks, sources, log_dir=tmp_path / "logs")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data.sources.echo.response: no column 'response' in "), proc.stderr[-2000:]
