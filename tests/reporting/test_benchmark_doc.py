"""Benchmark scripts share docs/benchmarks.md: each rewrites only its own section."""

import pytest

from peftlab.reporting.benchmark_doc import write_benchmark_section


def test_only_the_named_section_changes(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("intro\n<!-- BEGIN a -->\nold a\n<!-- END a -->\n<!-- BEGIN b -->\nold b\n<!-- END b -->\n")
    write_benchmark_section("a", "new a\n| x | 1\\2 |", doc)
    assert doc.read_text() == "intro\n<!-- BEGIN a -->\nnew a\n| x | 1\\2 |\n<!-- END a -->\n<!-- BEGIN b -->\nold b\n<!-- END b -->\n"


def test_missing_markers_are_an_error(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("no markers here\n")
    with pytest.raises(ValueError, match="BEGIN c"):
        write_benchmark_section("c", "text", doc)
    assert doc.read_text() == "no markers here\n"
