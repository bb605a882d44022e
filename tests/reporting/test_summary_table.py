"""The end-of-run table at 80 columns: pruned layer names stay distinguishable."""

from __future__ import annotations

import io

from rich.console import Console

from peftlab.reporting.summary import short_layer_names, summary_table

BERT_LAYERS = [f"body.backbone.model.encoder.layer.{i}.{k}" for i in range(2) for k in ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")]
BERT_LAYERS.append("body.backbone.model.pooler.dense")


def test_short_names_drop_the_shared_prefix_and_keep_the_end():
    short = short_layer_names(BERT_LAYERS)
    assert len(set(short.values())) == len(BERT_LAYERS)
    assert short["body.backbone.model.pooler.dense"] == "pooler.dense"
    assert short["body.backbone.model.encoder.layer.1.attention.self.query"] == "…layer.1.attention.self.query"
    assert short_layer_names(["body.net.0", "body.net.2"]) == {"body.net.0": "net.0", "body.net.2": "net.2"}


def test_pruned_run_table_at_80_columns_shows_every_layer_apart():
    layers = {name: {"sparsity": 0.5, "nonzero": 512, "numel": 1024} for name in BERT_LAYERS}
    metrics = {"score": 0.9, "tasks": {"t": {"acc": 0.9}}, "pruning": {"layers": layers}}
    out = io.StringIO()
    Console(file=out, width=80).print(summary_table(metrics))
    rows = [line for line in out.getvalue().splitlines() if "sparsity " in line and "non-zero" in line]
    names = [line.split("sparsity ", 1)[1].split("│")[0].strip() for line in rows]
    assert len(names) == len(BERT_LAYERS) and len(set(names)) == len(BERT_LAYERS), names
