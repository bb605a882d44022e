"""The causal_lm task type: response-only loss (checked against a hand-masked cross-entropy), its metrics, its spec."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from peftlab.errors import ConfigError
from peftlab.models.task_metrics import TaskMetrics
from peftlab.tasks import CausalLMTask, parse_task_specs


def _rows(seed: int = 0, vocab: int = 11):
    """Logits [3, 6, vocab] and labels: prompt lengths 2, 3, 1; row 1 padded after position 4."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 6, vocab, generator=gen)
    ids = torch.randint(0, vocab, (3, 6), generator=gen)
    labels = ids.clone()
    for row, prompt in enumerate((2, 3, 1)):
        labels[row, :prompt] = -100
    labels[1, 5:] = -100  # padding
    return logits, labels


def test_loss_equals_a_hand_masked_cross_entropy():
    logits, labels = _rows()
    # independent: every (row, position) by hand, position t's logits predict token t + 1
    terms = [F.cross_entropy(logits[b, t - 1][None], labels[b, t][None]) for b in range(3) for t in range(1, 6) if labels[b, t] != -100]
    expected = torch.stack(terms).mean()
    got = CausalLMTask().loss(logits, labels)
    assert len(terms) == 4 + 2 + 5
    torch.testing.assert_close(got, expected)


def test_prompt_and_padding_do_not_reach_the_loss():
    logits, labels = _rows()
    changed = logits.clone()
    changed[0, 0, 3] += 100.0  # predicts position 1: a prompt token of row 0
    changed[1, 4, 3] += 100.0  # predicts position 5: padding of row 1
    torch.testing.assert_close(CausalLMTask().loss(changed, labels), CausalLMTask().loss(logits, labels))
    changed[0, 1, int(labels[0, 2]) - 1] += 100.0  # predicts position 2: row 0's first response token
    assert not torch.allclose(CausalLMTask().loss(changed, labels), CausalLMTask().loss(logits, labels))


def test_metrics_loss_perplexity_and_exact_match():
    (task,) = parse_task_specs([{"name": "gen", "type": "causal_lm", "metrics": ["exact_match", "loss", "perplexity"]}])
    metrics = TaskMetrics([task])
    logits, labels = _rows()
    refs = [labels[b][labels[b] != -100] for b in range(3)]
    generated = torch.full((3, 6), -100)
    generated[0, : len(refs[0])] = refs[0]  # exact
    generated[1, : len(refs[1])] = refs[1]
    generated[1, 0] = (refs[1][0] + 1) % 11  # first token wrong
    generated[2, : len(refs[2]) - 1] = refs[2][:-1]  # stopped one token early
    half = 2
    for rows in (slice(0, half), slice(half, 3)):  # two batches
        metrics.update(task, {"logits": logits[rows], "generated": generated[rows]}, labels[rows])
    values = metrics.compute()["gen"]
    loss = float(CausalLMTask().loss(logits, labels))
    assert values["exact_match"] == pytest.approx(1 / 3)
    assert values["loss"] == pytest.approx(loss, rel=1e-5)
    assert values["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
    assert list(values) == ["exact_match", "loss", "perplexity"]


def test_spec_defaults_and_refusals():
    (task,) = parse_task_specs([{"name": "gen", "type": "causal_lm"}])
    assert task.metric == "exact_match" and task.metrics == ("exact_match", "perplexity") and task.num_classes == 0
    assert not task.task_type.stratify and task.task_type.generates
    with pytest.raises(ConfigError, match=r"data.tasks\[0\].num_classes: a causal_lm task has no classes"):
        parse_task_specs([{"name": "gen", "type": "causal_lm", "num_classes": 5}])
    with pytest.raises(ConfigError, match=r"data.tasks\[0\].metric: must be a higher-is-better metric for causal_lm"):
        parse_task_specs([{"name": "gen", "type": "causal_lm", "metric": "perplexity"}])


def test_a_batch_without_token_labels_is_one_line():
    with pytest.raises(ConfigError, match="needs prompt/response rows"):
        CausalLMTask().targets({"y": torch.zeros(2, 1), "task_mask": torch.ones(2, 1, dtype=torch.bool)}, 0)


def test_exact_match_on_a_two_turn_chat_row_compares_the_first_assistant_turn():
    """A multi-turn chat row labels every assistant turn; generation from the prompt answers the first.
    Before, the reference was all turns joined and exact match could never be 1 (review)."""
    from peftlab.tasks.lm_metrics import GeneratedExactMatch, first_labelled_span

    X, EOS = -100, 2
    labels = torch.tensor([[X, X, 5, 6, EOS, X, X, 7, EOS], [X, 9, EOS, X, X, X, X, X, X]])
    assert first_labelled_span(labels[0]).tolist() == [5, 6, EOS] and first_labelled_span(labels[1]).tolist() == [9, EOS]
    metric = GeneratedExactMatch()
    metric.update({"generated": torch.tensor([[5, 6, EOS, X], [9, 3, X, X]])}, labels)
    assert float(metric.compute()) == 0.5
