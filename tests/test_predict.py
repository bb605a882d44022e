"""predict.py: a trained run's checkpoint (or export) predicts new inputs; the rows equal the model's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import compose_config
from hf_helpers import save_tiny_bert
from peftlab.batch import call_body
from peftlab.errors import ConfigError
from peftlab.export import export_checkpoint, load_masked_model
from peftlab.inference import load_for_inference
from peftlab.predict import predict
from peftlab.train import train
from text_helpers import sentence, tiny_tokenizer_dir, write_csv, write_jsonl

pytestmark = pytest.mark.slow  # each test trains a run in-process (seconds)

CLASSES = ["negative", "neutral", "positive"]
FAST = ["trainer.max_epochs=1", "++trainer.limit_train_batches=3", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks=none", "logger=csv"]


def run_predict(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_config(list(overrides), tmp_path / "predict_run", config_name="predict")
    return predict(cfg)


def module_outputs(ckpt: str, inputs, task_mask=None) -> dict[str, torch.Tensor]:
    """The trained module's own head outputs (loaded as export/eval load it)."""
    model, _, _ = load_masked_model(ckpt)
    with torch.no_grad():
        return model(inputs, task_mask)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A tiny random BERT trained one epoch on a CSV (named classes) and a JSON-lines file (a number per row)."""
    root = tmp_path_factory.mktemp("text_run")
    bert = save_tiny_bert(root / "bert")
    tokenizer = tiny_tokenizer_dir(root)
    rows = [[sentence(i, 4 + i % 5), CLASSES[i % 3]] for i in range(60)]
    sentiment = write_csv(root / "sentiment.csv", ["text", "label"], rows)
    confidence = write_jsonl(root / "confidence.jsonl", [{"text": sentence(i, 3 + i % 4), "score": 10.0 + (i % 7)} for i in range(60)])
    cfg = compose_config(
        [*FAST, "model=hf", f"model.name_or_path={bert}", "data=text_files", f"data.tokenizer={tokenizer}", "data.cache_dir=null", "model.optimizer.lr=1e-3"]
        + [f"data.sources.sentiment.path={sentiment}", f"data.sources.confidence.path={confidence}", "data.batch_size=8"],
        root / "run",
    )
    metrics = train(cfg)
    return root, metrics["ckpt_path"]


def test_text_predictions_are_the_models_labels_probabilities_and_values(tmp_path, text_run):
    root, ckpt = text_run
    texts = [sentence(100 + i, 3 + i % 6) for i in range(11)] + ['a text with, a comma and "quotes"']
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(new, index=False)  # quotes escaped as CSV does
    out = tmp_path / "predictions.csv"
    result = run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={new}", f"output={out}", "batch_size=5")
    frame = pd.read_csv(out, keep_default_na=False)
    assert result["rows"] == len(texts) == len(frame)
    assert list(frame.columns) == ["text", "sentiment", *[f"sentiment_prob_{c}" for c in CLASSES], "confidence"]
    assert frame["text"].tolist() == texts

    model = load_for_inference(ckpt)
    expected = module_outputs(ckpt, model.encode(texts))  # one batch, padded together: same values as batches of 5
    assert frame["sentiment"].tolist() == [CLASSES[i] for i in expected["sentiment"].argmax(-1).tolist()]
    probs = torch.tensor(frame[[f"sentiment_prob_{c}" for c in CLASSES]].to_numpy())
    assert torch.allclose(probs, expected["sentiment"].softmax(-1).double(), atol=1e-5)
    assert torch.allclose(probs.sum(1), torch.ones(len(texts), dtype=torch.double), atol=1e-4)
    # regression on the labels' scale (10..16), not the standardised one the head learns
    assert torch.allclose(torch.tensor(frame["confidence"].to_numpy()), expected["confidence"].squeeze(-1).double(), atol=1e-4)
    assert frame["confidence"].between(5, 25).all()


def test_texts_on_the_command_line_and_json_lines_output(tmp_path, text_run):
    _, ckpt = text_run
    out = tmp_path / "p.jsonl"
    run_predict(tmp_path, f"ckpt_path={ckpt}", 'texts=["good movie","awful plot"]', f"output={out}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["good movie", "awful plot"]
    assert all(r["sentiment"] in CLASSES and isinstance(r["confidence"], float) for r in rows)


def test_one_text_per_line_and_bad_inputs(tmp_path, text_run):
    _, ckpt = text_run
    txt = tmp_path / "new.txt"
    txt.write_text("good film\n\nbad actor\n")
    out = tmp_path / "p.csv"
    assert run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={txt}", f"output={out}")["rows"] == 2
    with pytest.raises(ConfigError, match=r"^input: .*missing\.csv"):
        run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={tmp_path / 'missing.csv'}")
    with pytest.raises(ConfigError, match=r"^input_column: .*no column 'text'"):
        run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={write_csv(tmp_path / 'x.csv', ['sentence'], [['good']])}")
    with pytest.raises(ConfigError, match=r"^input: give exactly one"):
        run_predict(tmp_path, f"ckpt_path={ckpt}")
    with pytest.raises(ConfigError, match=r"^output: "):
        run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={txt}", f"output={tmp_path / 'p.xlsx'}")
    with pytest.raises(ConfigError, match=r"^ckpt_path: .*nope\.ckpt: no such file"):
        run_predict(tmp_path, f"ckpt_path={tmp_path / 'nope.ckpt'}", f"input={txt}")


def digits_features(tmp_path: Path, n: int = 40) -> tuple[Path, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data[-n:] / 16.0, dtype=torch.float32)
    path = tmp_path / "digits.csv"
    pd.DataFrame(x.numpy(), columns=[f"p{i}" for i in range(64)]).to_csv(path, index=False)
    return path, x


def train_digits(tmp_path: Path, *overrides: str) -> str:
    return train(compose_config([*FAST, *overrides], tmp_path / "run"))["ckpt_path"]


def test_digits_features_from_a_checkpoint_and_from_an_export(tmp_path):
    ckpt = train_digits(tmp_path)
    features, x = digits_features(tmp_path)
    expected = module_outputs(ckpt, x)
    for source in (ckpt, export_checkpoint(ckpt, str(tmp_path / "model.pt"))["out"]):
        out = tmp_path / f"{Path(source).stem}.csv"
        run_predict(tmp_path, f"ckpt_path={source}", f"input={features}", f"output={out}", "batch_size=16")
        frame = pd.read_csv(out)
        assert len(frame) == 40 and frame["row"].tolist() == list(range(40))
        for task in ("digit", "parity", "high"):
            assert frame[task].tolist() == expected[task].argmax(-1).tolist(), (source, task)
    model = load_for_inference(str(tmp_path / "model.pt"))
    assert not hasattr(model.network, "val_metrics") and not hasattr(model.network, "weighting")  # not the training module
    with pytest.raises(ConfigError, match=r"^input: .*rows have 3 values but the model reads 64"):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b,c\n1,2,3\n")
        run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={bad}")


def test_task_lora_routes_each_task_through_its_adapter(tmp_path):
    ckpt = train_digits(tmp_path, "strategy=task_lora", "model.optimizer.lr=0.01")
    features, x = digits_features(tmp_path, n=24)
    out = tmp_path / "p.csv"
    run_predict(tmp_path, f"ckpt_path={ckpt}", f"input={features}", f"output={out}")
    frame = pd.read_csv(out)
    model, _, _ = load_masked_model(ckpt)
    assert model.body.routes_by_task
    names = model.task_names
    for t, task in enumerate(names):
        only_t = torch.zeros(len(x), len(names), dtype=torch.bool)
        only_t[:, t] = True  # every row labelled for task t alone: it goes through t's adapter only
        with torch.no_grad():
            logits = model(x, only_t)[task]
            own = call_body(model.body, x, only_t)[task]
            other_task = names[(t + 1) % len(names)]
            through_other = call_body(model.body, x, torch.roll(only_t, 1, dims=1))[other_task]
        assert not torch.allclose(own, through_other)  # the adapters differ: routing decides the prediction
        assert frame[task].tolist() == logits.argmax(-1).tolist()
        probs = torch.tensor(frame[[c for c in frame.columns if c.startswith(f"{task}_prob_")]].to_numpy())
        assert torch.allclose(probs, logits.softmax(-1).double(), atol=1e-5)
