"""A trained model for inference: tokenizer + body + heads + task specs, nothing of training.

:class:`InferenceModel` is what :mod:`peftlab.predict` runs; it is built from a training
checkpoint (:func:`from_checkpoint`, the same builder and safe loading ``eval.py`` uses) or from
a file written by ``scripts/export.py`` (:func:`from_export`, through
:func:`peftlab.export.load_exported`). The training module's metrics, weighting, clipping and
optimizer state are dropped; only the network and what it needs to read inputs are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from peftlab.batch import Inputs, call_body
from peftlab.errors import ConfigError
from peftlab.tasks import TaskSpec, parse_task_specs


class TaskNetwork(nn.Module):
    """The body and the task heads of a trained model: ``inputs -> {task: head output}``."""

    def __init__(self, body: nn.Module, heads: nn.Module):
        super().__init__()
        self.body, self.heads = body, heads

    def forward(self, inputs: Inputs, task_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every task's head output. Without ``task_mask`` a body that routes rows by task
        (``strategy=task_lora``) sends every row through every task's adapter."""
        return self.heads(call_body(self.body, inputs, task_mask))


@dataclass
class InferenceModel:
    """What predicting needs of a trained model.

    Args:
        network: the body and heads (:class:`TaskNetwork`), in eval mode.
        tasks: the task specs, in ``data.tasks`` order.
        classes: task name -> class names in class-id order (tasks without named classes absent).
        tokenizer: the model's tokenizer for text models; None for feature inputs.
        max_length: tokens per text at most (text models).
        input_shape: shape of one feature sample (feature models such as the digits MLP).
    """

    network: TaskNetwork
    tasks: list[TaskSpec]
    classes: dict[str, list[str]] = field(default_factory=dict)
    tokenizer: Any = None
    max_length: int = 128
    input_shape: tuple[int, ...] | None = None

    @property
    def reads_text(self) -> bool:
        """Whether inputs are texts (else feature vectors)."""
        return self.tokenizer is not None

    def encode(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None) -> dict[str, torch.Tensor]:
        """Token ids of ``texts`` (and their second texts), padded to the longest, as the model was trained."""
        from peftlab.data.text_inputs import TextColumn
        from peftlab.data.tokenize import tokenize

        tokens = tokenize(TextColumn(list(texts), list(pairs) if pairs is not None else None), self.tokenizer, self.max_length)
        return tokens.batch(torch.arange(len(tokens)))

    @torch.no_grad()
    def __call__(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """Every task's head output for a batch of encoded inputs (each task through its own adapter)."""
        return self.network(inputs)

    def to(self, device: str | torch.device) -> "InferenceModel":
        """Move the network to ``device`` (returns self)."""
        self.network.to(device)
        return self


def from_module(module: nn.Module, cfg: DictConfig | Mapping[str, Any]) -> InferenceModel:
    """An :class:`InferenceModel` of a trained :class:`~peftlab.models.MultiTaskModule` and its training config."""
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    data = cfg.data
    tasks = parse_task_specs(OmegaConf.to_container(data.tasks, resolve=True))
    tokenizer = None
    if data.get("tokenizer"):
        from peftlab.data.tokenize import load_tokenizer

        tokenizer = load_tokenizer(str(data.tokenizer))
    shape = data.get("input_shape")
    return InferenceModel(
        network=TaskNetwork(module.body, module.heads).eval(),
        tasks=tasks,
        classes=task_classes(data, [t.name for t in tasks]),
        tokenizer=tokenizer,
        max_length=int(data.get("max_length") or 128),
        input_shape=tuple(int(n) for n in shape) if shape else None,
    )


def task_classes(data: DictConfig, task_names: Sequence[str]) -> dict[str, list[str]]:
    """Class names per task from the data config: ``data.sources.<task>.classes`` (a task's own
    source) or ``data.source.classes`` (a source shared by one task); tasks without them are left out."""
    found: dict[str, list[str]] = {}
    sources = data.get("sources") or {}
    shared = data.get("source") or {}
    for name in task_names:
        source = sources.get(name) or (shared if len(task_names) == 1 else {})
        classes = source.get("classes") if hasattr(source, "get") else None
        if classes:
            found[name] = [str(c) for c in classes]
    return found


def from_checkpoint(ckpt_path: str, trust_remote_code: bool = False) -> InferenceModel:
    """The model a training checkpoint holds (built as ``eval.py`` builds it, loaded safely;
    ``trust_remote_code`` only from the caller, never from the checkpoint)."""
    from peftlab.builders import build_model
    from peftlab.checkpoints.safe_loading import check_state_dict_matches, load_checkpoint_safely
    from peftlab.checkpoints.stored_config import load_buildable_config
    from peftlab.pruning.adapter_gates import gate_pruned_rows

    cfg = load_buildable_config(ckpt_path, trust_remote_code)  # one ConfigError line for a missing, foreign or crafted file (values only, never importable names)
    model = build_model(cfg)
    checkpoint = load_checkpoint_safely(ckpt_path, mmap=True)
    model.on_load_checkpoint(checkpoint)  # masks made loadable, frozen pretrained weights put back
    check_state_dict_matches(model, checkpoint["state_dict"], ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
    gate_pruned_rows(model.body.adapter_layers())  # as in training: an adapter adds nothing to a pruned unit
    return from_module(model, cfg)


def from_export(path: str, trust_remote_code: bool = False) -> InferenceModel:
    """The model of a file written by ``scripts/export.py`` (pruned units removed, adapters merged);
    its config is the checked one (values only, ``trust_remote_code`` from the caller)."""
    from peftlab.checkpoints.safe_build import buildable_config
    from peftlab.export import load_exported

    model = load_exported(path, trust_remote_code)  # one ConfigError line for a foreign or crafted file
    payload = torch.load(path, map_location="cpu", weights_only=True)  # safe: tensors and plain containers only
    return from_module(model, buildable_config(payload["config"], path, "path", trust_remote_code))


def is_export(path: str) -> bool:
    """Whether ``path`` is an export written by ``scripts/export.py`` (else a training checkpoint)."""
    from peftlab.pruning.compaction import FORMAT

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not readable here: from_checkpoint's safe loading names the problem
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def load_for_inference(path: str, key: str = "ckpt_path", trust_remote_code: bool = False) -> InferenceModel:
    """A training checkpoint or an export, whichever ``path`` is (a run directory: its checkpoint, see
    :func:`run_checkpoint`); a missing file raises ConfigError naming ``key``."""
    if Path(path).is_dir():
        path = run_checkpoint(Path(path))
    if not Path(path).is_file():
        raise ConfigError(key, f"{Path(path).absolute()}: no such file; pass <run dir>/checkpoints/<file>.ckpt or a file written by scripts/export.py")
    return from_export(path, trust_remote_code) if is_export(path) else from_checkpoint(path, trust_remote_code)


def run_checkpoint(run_dir: Path) -> str:
    """The checkpoint of a run directory: the one its ``metrics.json`` reports, else ``checkpoints/last.ckpt``."""
    import json

    reported = None
    try:
        reported = json.loads((run_dir / "metrics.json").read_text()).get("ckpt_path")
    except (OSError, ValueError, AttributeError):
        pass
    if reported and Path(reported).is_file():
        return str(reported)
    return str(run_dir / "checkpoints" / "last.ckpt")
