"""One-line errors for unknown config group options, before Hydra composes anything.

Hydra's own message for ``strategy=nope`` spans a dozen lines (search path included); users
get one line naming the group and its options instead. Anything this check does not
understand is left to Hydra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser


def group_options(config_dir: Path, group: str) -> list[str] | None:
    """Options of config group ``group`` (a folder under ``config_dir``), or None if it is not a group."""
    folder = config_dir / group
    if not folder.is_dir():
        return None
    return sorted(p.stem for p in folder.glob("*.yaml"))


def unknown_group_option(config_dir: str, args: Sequence[str]) -> str | None:
    """The error line for the first override that selects a missing group option, else None."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return None  # Hydra reports syntax errors itself
    for override in parsed:
        group = override.key_or_group
        if override.package or group.startswith("hydra"):
            continue
        options = group_options(Path(config_dir), group)
        if options is None or override.is_delete():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        for value in values:
            if value not in ("null",) and value not in options:
                return f"{group}: unknown option {value!r}; allowed: {', '.join(options)}"
    return None
