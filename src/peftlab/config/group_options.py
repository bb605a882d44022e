"""One-line errors for unknown config group options, before Hydra composes anything.

Hydra's own message for ``strategy=nope`` spans a dozen lines (search path included); users
get one line naming the group and its options instead. This check only reads plain values and
simple comma lists (``strategy=share,nope``); every other form of Hydra's override grammar
(``glob(*)``, ``range``, ``choice``, ``interval``, ``tag``, ``~key``, ``+key``, ``++key``) and
anything it does not understand is passed to Hydra untouched: it may add a clearer error, never
a new failure.

A ``/`` in an override's key always selects a config group (``strategy/pruning=magnitude``): a
group that does not exist is refused too, whether or not the override carries ``+`` (Hydra adds
``+strategy/prunning=magnitude`` as an unused key, so the run trained without pruning).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override


def group_options(config_dir: Path, group: str) -> list[str] | None:
    """Options of config group ``group`` (a folder under ``config_dir``), or None if it is not a group."""
    folder = config_dir / group
    if not folder.is_dir():
        return None
    return sorted(p.stem for p in folder.glob("*.yaml"))


def unknown_group(config_dir: Path, group: str) -> str | None:
    """The error line for a group path (``a/b``, ``+a/b``) that is not a folder under ``config_dir``, else None."""
    if "/" not in group or (config_dir / group).is_dir():
        return None
    parent, _, leaf = group.rpartition("/")
    while parent and not (config_dir / parent).is_dir():  # the deepest folder that exists
        parent, _, leaf = parent.rpartition("/")
    folder = config_dir / parent if parent else config_dir
    known = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name != "hydra")
    prefix = f"{parent}/" if parent else ""
    match = difflib.get_close_matches(leaf, known, n=1, cutoff=0.5)
    hint = f"did you mean {prefix}{match[0]}? " if match else ""
    return f"{group}: not a config group; {hint}groups under {parent or 'configs'}: {', '.join(prefix + k for k in known)}"


def parse_overrides(args: Sequence[str]) -> list[Override] | None:
    """Hydra's parse of the ``key=value`` command-line arguments, or None if Hydra would reject them."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return None  # Hydra reports syntax errors itself


def plain_values(override: Override) -> list[str] | None:
    """The values of a plain (``a``) or simple comma-list (``a,b``) override as strings, else None."""
    if override.is_sweep_override():
        value = override.value()
        if not isinstance(value, ChoiceSweep) or value.tags or value.shuffle:
            return None  # glob, range, interval, tagged or shuffled sweeps: Hydra's business
        return [str(v) if not isinstance(v, str) else v for v in value.list]
    value = override.value()
    return [value] if isinstance(value, str) else None


def unknown_group_option(config_dir: str, args: Sequence[str]) -> str | None:
    """The error line for the first override that selects a missing group option, else None."""
    parsed = parse_overrides(args)
    for override in parsed or []:
        try:
            group = override.key_or_group
            if override.package or group.startswith("hydra") or override.is_delete():
                continue
            missing_group = unknown_group(Path(config_dir), group)
            if missing_group:
                return missing_group
            options = group_options(Path(config_dir), group)
            values = plain_values(override) if options is not None else None
        except Exception:
            continue  # anything unexpected: leave it to Hydra
        for value in values or []:
            if value != "null" and value not in options:
                return f"{group}: unknown option {value!r}; allowed: {', '.join(options)}"
    return None
