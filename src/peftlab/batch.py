"""The batch contract shared by data/ and models/: ``{"inputs", "y", "task_mask"}``.

``inputs`` is one tensor (features, images) or a mapping of tensors (``input_ids``,
``attention_mask``, …) handed to the body as keyword arguments; ``y`` is ``[B, T]`` float
(a task's label in column ``t``) and ``task_mask`` ``[B, T]`` bool (which tasks each row is
labelled for).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def call_with_inputs(module: Any, inputs: Inputs) -> Any:
    """``module(**inputs)`` for a mapping of tensors, ``module(inputs)`` for one tensor."""
    if isinstance(inputs, Mapping):
        return module(**inputs)
    return module(inputs)


def inputs_size(inputs: Inputs) -> int:
    """Number of samples in ``inputs``."""
    if isinstance(inputs, Mapping):
        return len(next(iter(inputs.values())))
    return len(inputs)


def slice_inputs(inputs: Inputs, index: Any) -> Inputs:
    """``inputs[index]`` for a tensor, or the same slice of every tensor of a mapping."""
    if isinstance(inputs, Mapping):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def call_body(body: Any, inputs: Inputs, task_mask: torch.Tensor | None = None) -> Any:
    """``call_with_inputs(body, inputs)``, also handing the batch's ``task_mask`` to bodies that route
    rows by task (``routes_by_task = True``: ``strategy/sharing=task_lora``)."""
    if task_mask is None or not getattr(body, "routes_by_task", False):
        return call_with_inputs(body, inputs)
    if isinstance(inputs, Mapping):
        return body(**inputs, task_mask=task_mask)
    return body(inputs, task_mask=task_mask)
