"""ROUGE-L, chrF and BLEU of causal-LM generations: each equals a direct torchmetrics functional call
on the decoded texts; any of them may be a task's main metric."""

from __future__ import annotations

import logging

import pytest
import torch
from torchmetrics.functional.text import bleu_score, chrf_score, rouge_score

from peftlab.errors import ConfigError
from peftlab.models.task_metrics import TaskMetrics
from peftlab.tasks import parse_task_specs
from peftlab.tasks.text_metrics import attach_decoder

PROMPTS = ["say: ", "echo ", "q? "]
REFS = ["the cat sat on the mat", "hello world", "a b c d e f"]
GENS = ["the cat is on the mat", "hello", "a b c d e f"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE_DIR", str(tmp_path / "cache"))


def _batch(tok):
    """Right-padded prompt + response labels and left-aligned generations (EOS, then -100), as the model gives them."""
    eos = tok.eos_token_id
    rows = [tok(p)["input_ids"] + tok(r, add_special_tokens=False)["input_ids"] + [eos] for p, r in zip(PROMPTS, REFS)]
    width = max(map(len, rows))
    labels = torch.full((3, width), -100)
    for i, (p, row) in enumerate(zip(PROMPTS, rows)):
        start = len(tok(p)["input_ids"])
        labels[i, start : len(row)] = torch.tensor(row[start:])
    gens = [tok(g, add_special_tokens=False)["input_ids"] + [eos] for g in GENS]
    generated = torch.full((3, max(map(len, gens)) + 2), -100)
    for i, g in enumerate(gens):
        generated[i, : len(g)] = torch.tensor(g)
    return labels, generated


def test_text_metrics_equal_torchmetrics_functional_calls_on_the_decoded_texts():
    from peftlab.data.tokenize import load_tokenizer

    tok = load_tokenizer("chars")
    (task,) = parse_task_specs([{"name": "gen", "type": "causal_lm", "metric": "chrf", "metrics": ["rouge_l", "bleu", "exact_match"]}])
    assert task.metric == "chrf" and task.metrics == ("chrf", "rouge_l", "bleu", "exact_match")
    metrics = TaskMetrics([task])
    assert attach_decoder(metrics, tok) == 3
    labels, generated = _batch(tok)
    logits = torch.zeros(*labels.shape, 8)
    for rows in (slice(0, 2), slice(2, 3)):  # two batches: corpus-level scores over both
        metrics.update(task, {"logits": logits[rows], "generated": generated[rows]}, labels[rows])
    values = metrics.compute()["gen"]
    refs = [[r] for r in REFS]
    assert values["rouge_l"] == pytest.approx(float(rouge_score(GENS, REFS, rouge_keys="rougeL")["rougeL_fmeasure"]))
    assert values["chrf"] == pytest.approx(float(chrf_score(GENS, refs)))
    assert values["bleu"] == pytest.approx(float(bleu_score(GENS, refs)))
    assert 0.0 < values["bleu"] < values["chrf"] < 1.0 and values["exact_match"] == pytest.approx(1 / 3)
    assert metrics.score(metrics.compute()) == pytest.approx(values["chrf"])  # the declared main metric


def test_without_a_tokenizer_the_ids_are_scored_as_words_with_one_warning(caplog):
    (task,) = parse_task_specs([{"name": "gen", "type": "causal_lm", "metric": "rouge_l"}])
    metrics = TaskMetrics([task])
    labels = torch.tensor([[-100, 5, 6, 2]])
    with caplog.at_level(logging.WARNING, logger="peftlab.tasks.text_metrics"):
        metrics.update(task, {"logits": torch.zeros(1, 4, 8), "generated": torch.tensor([[5, 6, 2, -100]])}, labels)
        metrics.update(task, {"logits": torch.zeros(1, 4, 8), "generated": torch.tensor([[5, 7, 2, -100]])}, labels)
    assert caplog.text.count("no tokenizer attached") == 1
    # "5 6 2" vs "5 6 2" and "5 7 2" vs "5 6 2": LCS 3/3 and 2/3 words (no end-of-sequence id known)
    assert metrics.compute()["gen"]["rouge_l"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_a_lower_is_better_metric_cannot_be_main():
    with pytest.raises(ConfigError, match=r"data.tasks\[0\].metric: must be a higher-is-better metric for causal_lm: one of exact_match, rouge_l, chrf, bleu; got 'loss'"):
        parse_task_specs([{"name": "gen", "type": "causal_lm", "metric": "loss"}])
