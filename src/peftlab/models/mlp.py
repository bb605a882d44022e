"""A small multilayer perceptron backbone for tabular or flattened-image inputs."""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from peftlab.errors import ConfigError


class MLPBackbone(nn.Module):
    """Linear → activation → dropout, once per hidden width.

    Args:
        input_shape: shape of one input sample; it is flattened.
        hidden_dims: width of each hidden layer, e.g. ``[256, 256]``.
        dropout: dropout probability after each activation.
        activation: ``relu``, ``gelu`` or ``tanh``.
    """

    ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}

    def __init__(self, input_shape: Sequence[int], hidden_dims: Sequence[int] = (256, 256), dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if not hidden_dims or any(not isinstance(h, int) or h <= 0 for h in hidden_dims):
            raise ConfigError("model.backbone.hidden_dims", f"must be a non-empty list of positive integers; got {list(hidden_dims)}")
        if not 0 <= dropout < 1:
            raise ConfigError("model.backbone.dropout", f"must be in [0, 1); got {dropout}")
        if activation not in self.ACTIVATIONS:
            raise ConfigError("model.backbone.activation", f"must be one of {', '.join(self.ACTIVATIONS)}; got {activation!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden_dims:
            layers += [nn.Linear(width, h), self.ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x):
        """Features of shape ``[B, out_dim]``."""
        return self.net(x)
