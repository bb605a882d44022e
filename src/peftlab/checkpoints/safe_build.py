"""A config read from a file (a checkpoint, an export) supplies values, never importable names.

``eval.py``, ``scripts/export.py`` and ``load_exported()`` rebuild a model from the config a
file carries, and Hydra's ``instantiate`` imports and calls whatever a ``_target_`` names. A
crafted file that passes ``weights_only=True`` could name ``builtins.open`` or ``torch.load``
(``weights_only: false``), or switch on ``trust_remote_code`` for a model folder with code in it.
So before anything is built:

- every ``_target_`` in the stored config must be one that peftlab's own config tree
  (``configs/``) defines, or a ``torch.optim`` optimizer / LR-scheduler class (what users swap in
  with ``model.optimizer._target_=...`` when training);
- no stored string may hold an interpolation (``${...}``): a stored config is resolved, so one
  would only call a resolver the file chose;
- every ``trust_remote_code`` key is set to the value given on the command line; a stored
  ``true`` that the command line does not repeat is refused.

Anything else is one :class:`~peftlab.errors.ConfigError` line naming the file's key and the
offending config key.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from peftlab.errors import ConfigError

# peftlab's config tree (the repository's configs/, as peftlab.config.CONFIG_DIR; that package
# sits in a layer above this one, so the path is computed here too)
CONFIG_TREE = Path(__file__).resolve().parents[3] / "configs"
TRUST_KEY = "trust_remote_code"
# Components that moved or were replaced since a checkpoint may have been written: the stored name
# is read as the new one (only names peftlab's own configs once wrote; nothing else is mapped).
MOVED_TARGETS = {
    "peftlab.pruning.PruningCallback": "peftlab.callbacks.pruning.PruningCallback",
    "peftlab.utils.auto_resume.RunDirGuard": "peftlab.runs.auto_resume.RunDirGuard",
    "peftlab.utils.eligible_checkpoint.EligibleModelCheckpoint": "peftlab.callbacks.eligible_checkpoint.EligibleModelCheckpoint",
    "peftlab.utils.lr_logging.LearningRateLogger": "peftlab.callbacks.lr_logging.LearningRateLogger",
    "peftlab.utils.lr_schedule_budget.LRScheduleFollowsBudget": "peftlab.callbacks.lr_schedule_budget.LRScheduleFollowsBudget",
    "peftlab.utils.step_checkpoint.StepCheckpoint": "peftlab.callbacks.step_checkpoint.StepCheckpoint",
    "lightning.pytorch.loggers.CSVLogger": "peftlab.reporting.resumed_logs.ResumableCSVLogger",
    "lightning.pytorch.callbacks.RichModelSummary": "peftlab.callbacks.model_summary.ParameterSummary",
}
# Hydra's special keys that peftlab's own configs use; any other (``_args_`` would pass positional
# arguments such as HFBackbone's trust_remote_code past the keyword check) is refused in a stored config
INSTANTIATE_KEYS = ("_target_", "_partial_")
# data.sources.<task> entries once named their source class and called the training file ``train``
OLD_TEXT_SOURCE = "peftlab.data.TextFileSource"


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(dotted path, key, value)`` of every mapping entry and list item under ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        child = f"{path}.{key}" if path and isinstance(key, str) else f"{path}[{key}]" if not isinstance(key, str) else str(key)
        yield child, key, value
        yield from _walk(value, child)


@functools.cache
def allowed_targets(config_tree: Path = CONFIG_TREE) -> frozenset[str]:
    """Every ``_target_`` value written in a yaml file of peftlab's config tree."""
    found = set()
    for file in sorted(config_tree.rglob("*.yaml")):
        for _, key, value in _walk(yaml.safe_load(file.read_text()) or {}):
            if key == "_target_" and isinstance(value, str):
                found.add(value)
    return frozenset(found)


def _is_torch_optim_class(target: str) -> bool:
    """Whether ``target`` names an optimizer or LR-scheduler class of ``torch.optim`` (looked up, never imported)."""
    module, _, name = target.rpartition(".")
    owner = {"torch.optim": torch.optim, "torch.optim.lr_scheduler": torch.optim.lr_scheduler}.get(module)
    cls = getattr(owner, name, None) if owner is not None and not name.startswith("_") else None
    return isinstance(cls, type) and issubclass(cls, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler))


def buildable_config(stored: DictConfig | dict, source: str, key: str, trust_remote_code: bool = False) -> DictConfig:
    """``stored`` checked as described in the module docstring, with ``trust_remote_code`` from the caller.

    ``source`` is the file the config came from and ``key`` the argument that named it
    (``ckpt_path``, ``path``); both appear in the error line.
    """
    # through OmegaConf first: a tuple (which weights_only loading allows) becomes a list, so every
    # nested mapping below is walked; anything OmegaConf cannot hold is refused here
    try:
        config = OmegaConf.to_container(OmegaConf.create(stored), resolve=False)
    except Exception as err:  # OmegaConf's errors for unsupported values and keys
        raise ConfigError(key, f"{source}: its stored config is not a plain mapping of values ({type(err).__name__})") from None
    _upgrade_moved_components(config)
    allowed = allowed_targets()
    for path, name, value in list(_walk(config)):
        if isinstance(name, str) and name.startswith("_") and name.endswith("_") and name not in INSTANTIATE_KEYS:
            raise ConfigError(key, f"{source}: its stored config sets {path}, which peftlab's configs never use; a checkpoint's config supplies values, never how to call a component")
        if name == "_target_" and not (isinstance(value, str) and (value in allowed or _is_torch_optim_class(value))):
            raise ConfigError(key, f"{source}: its stored config sets {path}={value!r}, which is not one of peftlab's own components; a checkpoint's config supplies values, never what to import")
        if isinstance(value, str) and "${" in value:
            raise ConfigError(key, f"{source}: its stored config key {path} holds an interpolation ({value!r}); a stored config is resolved and may not call resolvers")
        if name == TRUST_KEY and value is True and not trust_remote_code:
            raise ConfigError(
                key, f"{source}: its stored config sets {path}=true; a file cannot allow a model's own code to run: pass trust_remote_code=true on the command line if you trust that model"
            )
    _set_trust(config, trust_remote_code)
    return OmegaConf.create(config)


def _set_trust(node: Any, value: bool) -> None:
    """Set every ``trust_remote_code`` key under ``node`` to ``value`` (in place)."""
    if isinstance(node, dict):
        for k in node:
            if k == TRUST_KEY:
                node[k] = value
            else:
                _set_trust(node[k], value)
    elif isinstance(node, list):
        for item in node:
            _set_trust(item, value)


def _upgrade_moved_components(node: Any) -> None:
    """Read the names in :data:`MOVED_TARGETS` as their new ones, and an old text-file source entry
    (``_target_: peftlab.data.TextFileSource``, ``train: <file>``) as today's plain mapping (in place)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if not isinstance(target, str):
            pass  # (refused by the target check)
        elif target in MOVED_TARGETS:
            node["_target_"] = MOVED_TARGETS[target]
        elif target == OLD_TEXT_SOURCE:
            del node["_target_"]
            if "train" in node:
                node["path"] = node.pop("train")
        for value in node.values():
            _upgrade_moved_components(value)
    elif isinstance(node, list):
        for item in node:
            _upgrade_moved_components(item)
