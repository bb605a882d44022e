"""Read checkpoints we wrote, safely: ``weights_only=True`` and one clear line for a bad file.

``torch.load(weights_only=True)`` unpickles only tensors and plain containers, so a checkpoint
cannot run code when it is opened. peftlab's checkpoints hold nothing else (the config is stored
as a plain dict, callback states as tensors, numbers and lists), so no extra safe globals are
needed.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from packaging.version import InvalidVersion, Version
from torch import nn

from peftlab.errors import ConfigError

KEY = "ckpt_path"
# The entry Lightning writes into every checkpoint, and the oldest version peftlab ever trained with.
VERSION_KEY = "pytorch-lightning_version"
OLDEST_LIGHTNING = "2.0.0"
_HINT = "pass a checkpoint written by train.py (e.g. <run dir>/checkpoints/last.ckpt)"


def load_checkpoint_safely(path: str | Path, key: str = KEY, map_location: Any = "cpu", weights_only: bool = True, mmap: bool = False) -> dict[str, Any]:
    """The Lightning checkpoint at ``path``; a missing, truncated or foreign file raises one
    :class:`~peftlab.errors.ConfigError` naming ``key`` and the file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(key, f"{path}: no such file; {_HINT}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # mmap needs torch's zip format; a legacy pickle is read plainly, so a refusal is reported as one
            checkpoint = torch.load(file, map_location=map_location, weights_only=weights_only, mmap=mmap and zipfile.is_zipfile(file))
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:  # weights_only refused to build an object: not one of our files (ours hold none)
            raise ConfigError(key, f"{path}: holds a {found.group(1)} object, which weights_only loading refuses (it could run code); {_HINT}") from None
        if _pickles_objects(file):  # e.g. a plain pickle (not torch's zip format) that builds objects
            raise ConfigError(key, f"{path}: holds Python objects that weights_only loading refuses (it could run code); {_HINT}") from None
        raise ConfigError(key, f"{path}: not a readable checkpoint (truncated, or not written by torch.save); {_HINT}") from None
    except Exception as err:  # truncated or not a torch file: the unpickler fails with any of many types (KeyError for "hello\n")
        raise ConfigError(key, f"{path}: not a readable checkpoint (truncated, or not written by torch.save: {type(err).__name__}); {_HINT}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ConfigError(key, f"{path}: not a Lightning checkpoint (no 'state_dict' entry); {_HINT}")
    check_lightning_version(checkpoint, path, key)
    return checkpoint


# Pickle opcodes that import a name or build an object: what weights_only loading refuses.
OBJECT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def _pickles_objects(file: Path) -> bool:
    """Whether ``file`` is a pickle that imports names or builds objects (read with pickletools, nothing run)."""
    try:
        with file.open("rb") as f:
            return any(op.name in OBJECT_OPCODES for op, _, _ in pickletools.genops(f))
    except Exception:  # not a pickle, or cut short before any such opcode
        return False


def check_lightning_version(checkpoint: Mapping[str, Any], path: str | Path, key: str = KEY) -> None:
    """ConfigError naming ``key`` unless the checkpoint records a Lightning version peftlab's checkpoints can have.

    Lightning migrates older checkpoints by this key and fails with a traceback without it (or on
    a 0.x/1.x layout, which no peftlab run ever wrote).
    """
    version = checkpoint.get(VERSION_KEY)
    if not isinstance(version, str):
        raise ConfigError(key, f"{path}: has no {VERSION_KEY!r} entry, so it was not written by a Lightning trainer; {_HINT}")
    try:
        too_old = Version(version) < Version(OLDEST_LIGHTNING)
    except InvalidVersion:
        too_old = True
    if too_old:
        raise ConfigError(key, f"{path}: was written by Lightning {version!r}; peftlab reads checkpoints of Lightning >= {OLDEST_LIGHTNING}; {_HINT}")


def check_state_dict_matches(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path, key: str = KEY) -> None:
    """ConfigError naming ``key`` unless ``state_dict`` has ``model``'s entries with the same shapes.

    Pruning masks (``*_mask``; ``*_orig`` of torch.nn.utils.prune) are left out of the
    comparison: a freshly built model gets them when the checkpoint is loaded.
    """

    def base(name: str) -> str | None:
        if name.endswith("_mask"):
            return None
        return name[: -len("_orig")] if name.endswith("_orig") else name

    # non-tensor entries (a module's ``get_extra_state``, e.g. DWA's partial sums) have no shape
    expected = {base(k): v.shape for k, v in model.state_dict().items() if base(k) is not None and isinstance(v, torch.Tensor)}
    stored = {base(k): v.shape for k, v in state_dict.items() if base(k) is not None and isinstance(v, torch.Tensor)}
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    shapes = [f"{k} {list(stored[k])} vs {list(expected[k])}" for k in expected if k in stored and stored[k] != expected[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}")
        if shapes:
            parts.append(f"shapes differ: {', '.join(shapes[:3])}{' …' if len(shapes) > 3 else ''}")
        raise ConfigError(key, f"{path}: holds a different model than the configured one ({'; '.join(parts)}); use the model/data config it was trained with")
