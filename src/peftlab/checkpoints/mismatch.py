"""A one-line error when ``ckpt_path`` holds a model built from another config.

PyTorch's ``load_state_dict`` error lists every missing and unexpected tensor over many lines;
users need to know which config key differs from the run that wrote the checkpoint.
"""

from __future__ import annotations

import re
from typing import Any

from peftlab.errors import ConfigError

_SECTIONS = ("model", "strategy", "data.tasks")


def flatten_config(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"dotted.key": value}`` (lists are values)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten_config(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _section(cfg: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def config_differences(saved: dict, current: dict, limit: int = 4) -> list[str]:
    """``key: checkpoint A, now B`` for model/strategy/task keys that differ (at most ``limit``)."""
    diffs = []
    for section in _SECTIONS:
        old, new = flatten_config(_section(saved, section), section), flatten_config(_section(current, section), section)
        for key in dict.fromkeys([*old, *new]):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                diffs.append(f"{key}: checkpoint {old.get(key, '<absent>')}, now {new.get(key, '<absent>')}")
    # a different class (weighting, sharing, backbone) explains a mismatch; values derived from
    # the epoch budget (e.g. a scheduler's T_max) usually differ on a legitimate resume
    classes = [d for d in diffs if d.split(":")[0].endswith("_target_")]
    return (classes or diffs)[:limit]


def checkpoint_mismatch(exc: BaseException, ckpt_path: str, saved: dict | None, current: dict) -> ConfigError | None:
    """A ConfigError for ``ckpt_path`` when ``exc`` is a state-dict mismatch, else None."""
    text = str(exc)
    if "Error(s) in loading state_dict" not in text:
        return None
    parts = []
    for label, pattern in (("missing", r"Missing key\(s\) in state_dict: (.*?)\.\s*(?:\n|$)"), ("unexpected", r"Unexpected key\(s\) in state_dict: (.*?)\.\s*(?:\n|$)")):
        match = re.search(pattern, text)
        if match:
            names = re.findall(r'"([^"]+)"', match.group(1))
            parts.append(f"{label} {', '.join(names[:4])}{' …' if len(names) > 4 else ''}")
    sizes = re.findall(r"size mismatch for ([^:]+):", text)
    if sizes:
        parts.append(f"other shapes for {', '.join(sizes[:4])}{' …' if len(sizes) > 4 else ''}")
    diffs = config_differences(saved or {}, current)
    what = f"; it differs in {'; '.join(diffs)}" if diffs else ""
    return ConfigError(
        "ckpt_path",
        f"{ckpt_path} holds a model built from another config ({'; '.join(parts) or 'tensors differ'}){what}; resume with the overrides of the run that wrote it (its .hydra/overrides.yaml)",
    )
