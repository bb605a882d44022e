"""A one-line error, with the closest valid key, for an override of a key the config lacks.

Hydra's message for ``trainer.max_epoch=2`` suggests ``+trainer.max_epoch=2``, which adds the
typo to the config and fails later (or never). Before Hydra runs, this composes the config with
the overrides that shape it (groups, ``+``, ``++``, ``~``) and looks up each plain ``key=value``
override; a missing key gets ``difflib``'s closest valid key. Anything this check does not
understand (sweeps over groups, dict values, composition errors) is left to Hydra, so it never
adds a failure Hydra would not have reported.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from peftlab.config.group_options import group_options, parse_overrides


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether dotted ``key`` exists in ``cfg`` (a ``???`` value counts; unsure cases count too)."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none() and not node._is_interpolation():
            if part not in node.keys():
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and not node._is_missing() and not node._is_none() and not node._is_interpolation():
            if not (part.isdigit() and int(part) < len(node)):
                return False
            node = node._get_node(int(part))
        else:
            return True  # a scalar, interpolation or missing node: leave it to Hydra
    return True


def all_keys(cfg, prefix: str = "") -> list[str]:
    """Every dotted key of ``cfg`` (nodes and leaves), without resolving interpolations."""
    keys = []
    items = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else enumerate(cfg) if isinstance(cfg, ListConfig) else []
    for k, _ in items:
        key = f"{prefix}{k}"
        keys.append(key)
        child = cfg._get_node(k)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_missing() and not child._is_none():
            keys += all_keys(child, key + ".")
    return keys


def unknown_override_key(config_dir: str, config_name: str, args: Sequence[str]) -> str | None:
    """The error line for the first ``key=value`` override whose key is not in the config, else None."""
    parsed = parse_overrides(args)
    if not parsed:
        return None
    shaping, checked = [], []
    for override in parsed:
        key = override.key_or_group
        is_group = override.package is not None or group_options(Path(config_dir), key) is not None
        if key.startswith("hydra"):
            continue
        if is_group or override.is_add() or override.is_force_add() or override.is_delete():
            if override.is_sweep_override():
                return None  # jobs differ in shape: Hydra reports per job
            shaping.append(override.input_line)
        elif isinstance(override.value(), dict):
            return None  # a dict value may bring new keys for later overrides
        else:
            checked.append(key)
    if not checked:
        return None
    cfg = _compose(config_dir, config_name, shaping)
    if cfg is None:
        return None
    for key in checked:
        if not has_key(cfg, key):
            return f"{key}: not a config key; {_hint(cfg, key)}"
    return None


def _hint(cfg: DictConfig, key: str) -> str:
    """The closest valid key (a sibling first), else what the parent node holds."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_resolution_failure=False) if parent else cfg
    siblings = [k for k in (all_keys(node) if isinstance(node, DictConfig) else []) if "." not in k and not k.startswith("_")]
    match = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if match:
        return f"did you mean {parent + '.' if parent else ''}{match[0]}?"
    match = difflib.get_close_matches(key, [k for k in all_keys(cfg) if "._" not in k], n=1, cutoff=0.8)
    if match:
        return f"did you mean {match[0]}?"
    if siblings:
        return f"{parent or 'the config'} has no {leaf!r} (it has {', '.join(siblings[:15])}); a new key needs a leading +: +{key}=…"
    return f"a new key needs a leading + (+{key}=…)"


def _compose(config_dir: str, config_name: str, overrides: list[str]) -> DictConfig | None:
    """The composed config (no Hydra node), or None when composition fails (Hydra will say why)."""
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except Exception:
        return None
