"""Overrides of ``data.sources``, a mapping whose keys are the user's own task names.

Hydra's configs are closed ("struct"): ``data.sources.topic.path=my.csv`` for a task the data
config does not name yet fails with "Could not override … Key 'topic' is not in struct", and a
dict value (``data.sources={topic: {…}}``) is merged into the default entries instead of
replacing them. Before Hydra runs, each plain override under ``data.sources`` becomes a
force-add (``++``), and a plain ``data.sources=<mapping or null>`` first clears the default
entries, so that

* ``data.sources.topic.path=my.csv`` adds or changes one setting of task ``topic``, and
* ``data.sources={topic: {path: my.csv, label: topic}}`` replaces the whole mapping.

A misspelt setting is still refused, by the datamodule (``data.sources.topic.pth: not a setting
…``). Sweeps (``a,b``) and the ``+``/``++``/``~`` forms are passed to Hydra untouched.
"""

from __future__ import annotations

from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

OPEN_MAPPINGS = ("data.sources",)


def open_mapping_overrides(args: Sequence[str]) -> list[str]:
    """``args`` with plain overrides of :data:`OPEN_MAPPINGS` rewritten as described above."""
    parser = OverridesParser.create()
    out: list[str] = []
    for arg in args:
        if arg.startswith(("-", "+", "~")) or "=" not in arg or not arg.split("=", 1)[0].startswith(OPEN_MAPPINGS):
            out.append(arg)
            continue
        try:
            override = parser.parse_overrides([arg])[0]
        except Exception:  # Hydra's grammar error is reported elsewhere (config/command_line.py)
            out.append(arg)
            continue
        key = override.key_or_group
        if override.package is not None or override.is_sweep_override() or not any(key == m or key.startswith(m + ".") for m in OPEN_MAPPINGS):
            out.append(arg)
        elif key in OPEN_MAPPINGS:  # the whole mapping: clear the defaults, then set it
            out += [f"++{key}=null", f"++{arg}"]
        else:
            out.append(f"++{arg}")
    return out
