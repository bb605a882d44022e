"""The arms of ``bench_weighting.py`` beside peftlab's own methods: torchjd 0.18 in-process, and the models.

* :class:`TorchJDModule`: the same ``MultiTaskModule`` (same model, batch, optimizer, Lightning
  step), whose per-task backward is torchjd's ``mtl_backward`` on the shared features followed by
  ``jac_to_grad`` with one of its aggregators (the Gramian path, ``optimize_gramian_computation``,
  where the aggregator allows it). torchjd is a benchmark-only dependency.
* :class:`BertBackbone`: a randomly initialised encoder of a given ``BertConfig`` (BERT-base or
  MiniLM-L6's shape); features = the [CLS] hidden state.
"""

from __future__ import annotations

import torch
from torch import nn

from peftlab.models import MultiTaskModule, PerTaskBackwardResult
from peftlab.models.weighted_loss import shared_representation

#: arm name → torchjd aggregator factory
TORCHJD = {
    "torchjd-upgrad": lambda a: a.UPGrad(),
    "torchjd-mgda": lambda a: a.MGDA(),
    "torchjd-imtlg": lambda a: a.IMTLG(),
    "torchjd-cagrad": lambda a: a.CAGrad(c=0.4),
    "torchjd-pcgrad": lambda a: a.PCGrad(),
}


class TorchJDModule(MultiTaskModule):
    """``MultiTaskModule`` whose per-task gradients come from torchjd (``aggregator``: a torchjd Aggregator)."""

    def __init__(self, *args, aggregator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.aggregator = aggregator

    def _per_task_backward(self, features, losses, task_mask=None) -> PerTaskBackwardResult:
        from torchjd.aggregation import GramianWeightedAggregator
        from torchjd.autojac import jac_to_grad, mtl_backward

        shared = [p for p in self.body.shared_parameters() if p.requires_grad]
        heads = [[p for p in self.heads.heads[name].parameters() if p.requires_grad] for name in losses]
        mtl_backward(list(losses.values()), features=shared_representation(features), tasks_params=heads, shared_params=shared)
        jac_to_grad(shared, self.aggregator, optimize_gramian_computation=isinstance(self.aggregator, GramianWeightedAggregator))
        return PerTaskBackwardResult(torch.stack(list(losses.values())).sum().detach(), [], skipped=False)


class BertBackbone(nn.Module):
    """A randomly initialised BERT encoder (``config`` None: BERT-base); features = the [CLS] hidden state."""

    def __init__(self, config=None):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.model = BertModel(config or BertConfig(), add_pooling_layer=False)
        self.out_dim = self.model.config.hidden_size

    def forward(self, x):
        return self.model(input_ids=x).last_hidden_state[:, 0]


def minilm_config():
    """all-MiniLM-L6-v2's shape (6 layers, hidden 384, 12 heads, FFN 1536), random weights: the timing needs the shape, not the weights."""
    from transformers import BertConfig

    return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
