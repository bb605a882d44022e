"""What causal-LM tasks need of the body: one shared decoder with an LM head, and its generations during evaluation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from peftlab.errors import ConfigError
from peftlab.models.generation import IGNORE, ignore_after_eos, prompt_batch
from peftlab.models.hf_causal_lm import HFCausalLMBackbone
from peftlab.tasks import TaskSpec
from peftlab.tasks.causal_lm import GENERATION_METRICS


def generator_of(body: Any) -> HFCausalLMBackbone | None:
    """The body's decoder with an LM head (one shared backbone), or None."""
    backbone = getattr(body, "backbone", None)
    return backbone if isinstance(backbone, HFCausalLMBackbone) else None


def check_causal_lm_body(tasks: Sequence[TaskSpec], body: Any) -> None:
    """One line when the tasks and the body do not fit: a causal-LM task needs ``model=hf_causal_lm``
    with one shared decoder (not ``task_lora`` or ``separate`` yet), every task on such a decoder
    must be a causal-LM task (classification / regression heads on it are not built yet), and
    something must train (``frozen`` trains only heads, and causal-LM tasks have none)."""
    generating = [i for i, t in enumerate(tasks) if t.task_type.generates]
    decoder = generator_of(body)
    if not generating:
        if decoder is not None:
            raise ConfigError("model", "model=hf_causal_lm gives token logits for causal_lm tasks; these tasks pool features: use model=hf")
        return
    if getattr(body, "routes_by_task", False):
        raise ConfigError("strategy.sharing", "task_lora on causal_lm tasks is not built yet; use full, bitfit or peft (shared LoRA)")
    if decoder is None:
        raise ConfigError("model", f"task {tasks[generating[0]].name!r} is causal_lm: it needs a decoder with its LM head shared by every task (model=hf_causal_lm; not strategy=separate)")
    other = [i for i, t in enumerate(tasks) if not t.task_type.generates]
    if other:
        raise ConfigError(f"data.tasks[{other[0]}].type", f"{tasks[other[0]].type} heads on a causal-LM decoder are not built yet: every task of model=hf_causal_lm must be causal_lm")
    if not body.trainable_parameters():
        raise ConfigError(
            "strategy.sharing",
            "nothing trains: causal_lm tasks have no head of their own (the LM head is the decoder's), and frozen trains only heads (bitfit: only biases, which Llama-style decoders lack); use full or peft",
        )


def evaluation_output(task: TaskSpec, body: Any, inputs: Mapping[str, torch.Tensor], rows: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> Any:
    """What a causal-LM task's metrics are updated with: ``{"logits", "generated"}`` for the rows
    ``rows`` of the batch (greedy generation from their prompts, up to the longest reference
    response of these rows: enough to decide exact match); other tasks: ``logits`` unchanged."""
    if not task.task_type.generates:
        return logits
    output: dict[str, torch.Tensor] = {"logits": logits}
    if set(task.metrics) & set(GENERATION_METRICS):
        decoder = generator_of(body)
        pad = int(decoder.model.config.pad_token_id or 0)
        ids, mask = prompt_batch(inputs["input_ids"][rows], inputs["attention_mask"][rows], labels, pad)
        longest = int((labels != IGNORE).sum(1).max())
        output["generated"] = ignore_after_eos(decoder.generate(ids, mask, longest), decoder.eos_token_id)
    return output
