"""``data.sources``: each task's own source, given as a plain mapping of file settings or as a source object.

A plain mapping (``data.sources.topic.path=my.csv data.sources.topic.label=topic``) names a
:class:`~peftlab.data.text_files.TextFileSource`'s arguments; no ``_target_`` is needed. Tasks
whose mappings name the same file(s) and text column(s) share one *joint* source: the file is
read once and each row carries a label for every one of those tasks (so a 300-row file with two
label columns is 300 rows, not 600). A mapping that names a ``dataset`` reads a Hugging Face
dataset instead (:class:`~peftlab.data.hf_datasets.HFDatasetSource`, keys :data:`DATASET_KEYS`).
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping, Sequence

from peftlab.data.hf_datasets import HFDatasetSource
from peftlab.data.text_files import TextFileSource, absolute_path
from peftlab.errors import ConfigError
from peftlab.tasks import TaskSpec

#: the keys of a plain ``data.sources.<task>`` mapping, with their defaults
FILE_KEYS: dict[str, Any] = {
    "path": None,
    "validation": None,
    "test": None,
    "text": "text",
    "text_pair": None,
    "label": "label",
    "classes": None,
    "prompt": None,
    "response": None,
    "messages": None,
    "chat_template": "auto",
}
#: the keys of a ``data.sources.<task>`` mapping that names a Hugging Face ``dataset``, with their defaults
DATASET_KEYS: dict[str, Any] = {
    "dataset": None,
    "subset": None,
    "splits": None,
    **{k: v for k, v in FILE_KEYS.items() if k not in ("path", "validation", "test")},
}
#: the columns a causal-LM task reads when its mapping names none
LM_COLUMNS = {"prompt": "prompt", "response": "response"}


def _settings(key: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping's settings with defaults filled in; unknown keys and a missing path are refused."""
    for name in mapping:
        if name not in FILE_KEYS:
            close = difflib.get_close_matches(str(name), FILE_KEYS, n=1)
            hint = f"did you mean {key}.{close[0]}? " if close else ""
            raise ConfigError(f"{key}.{name}", f"not a setting of a task's files; {hint}allowed: {', '.join(FILE_KEYS)}")
    settings = {**FILE_KEYS, **dict(mapping)}
    if not settings["path"]:
        raise ConfigError(f"{key}.path", "required: the task's data file (.csv, .tsv, .jsonl or .parquet)")
    classes = settings["classes"]
    if classes is not None and (isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence)):
        raise ConfigError(f"{key}.classes", f"must be a list of label values in class-id order (or null); got {classes!r}")
    for name in ("path", "validation", "test"):
        if settings[name]:
            settings[name] = str(absolute_path(str(settings[name])))
    return settings


def source_groups(tasks: Sequence[TaskSpec], shared: Any, sources: Mapping[str, Any]) -> list[tuple[str, Any, list[int]]]:
    """``(config key, source, indices of the tasks it serves)`` for every source, in task order.

    Tasks without an entry in ``sources`` read ``shared`` (``data.source``); an entry is a source
    object (it has ``load()``) or a plain mapping of :data:`FILE_KEYS`. Mappings that agree on
    ``path``, ``validation``, ``test``, ``text`` and ``text_pair`` become one joint source.
    """
    groups: list[tuple[str, Any, list[int]]] = []
    joint: dict[tuple, list[int]] = {}
    settings: dict[int, dict[str, Any]] = {}
    shared_ids = [i for i, t in enumerate(tasks) if t.name not in sources]
    if shared_ids:
        groups.append(("data.source", shared, shared_ids))
    for i, task in enumerate(tasks):
        if task.name not in sources:
            continue
        key, entry = f"data.sources.{task.name}", sources[task.name]
        if not isinstance(entry, Mapping) and hasattr(entry, "load"):
            groups.append((key, entry, [i]))
        elif isinstance(entry, Mapping) and "dataset" in entry:
            groups.append((key, dataset_source(key, task, entry), [i]))
        elif isinstance(entry, Mapping):
            settings[i] = _lm_columns(key, task, _settings(key, entry))
            files = tuple(settings[i][k] for k in ("path", "validation", "test", "text", "text_pair", "prompt", "response", "messages"))
            if settings[i]["response"]:  # a causal-LM task reads its file alone
                files += (task.name,)
            if files not in joint:
                joint[files] = []
                groups.append((key, files, joint[files]))  # placeholder: the source is built below
            joint[files].append(i)
        else:
            raise ConfigError(key, f"must be a mapping of file settings ({', '.join(FILE_KEYS)}) or a source object; got {entry!r}")
    return [(key, _build(tasks, settings, source, ids) if isinstance(source, tuple) else source, ids) for key, source, ids in groups]


def dataset_source(key: str, task: TaskSpec, mapping: Mapping[str, Any]) -> HFDatasetSource:
    """A task's Hugging Face dataset (``data.sources.<task>.dataset``), its settings checked."""
    for name in mapping:
        if name not in DATASET_KEYS:
            close = difflib.get_close_matches(str(name), DATASET_KEYS, n=1)
            hint = f"did you mean {key}.{close[0]}? " if close else ""
            raise ConfigError(f"{key}.{name}", f"not a setting of a task's dataset; {hint}allowed: {', '.join(DATASET_KEYS)}")
    settings = _lm_columns(key, task, {**DATASET_KEYS, **dict(mapping)})
    return HFDatasetSource(**settings, config_key=key)


def _lm_columns(key: str, task: TaskSpec, settings: dict[str, Any]) -> dict[str, Any]:
    """A causal-LM task's prompt / response columns (``prompt``, ``response`` unless named; a task
    naming ``messages`` reads chat rows instead); other tasks may not name them."""
    if task.task_type.generates:
        return {**settings, **{k: settings[k] or v for k, v in LM_COLUMNS.items()}}
    named = [k for k in (*LM_COLUMNS, "messages") if settings[k]]
    if named:
        raise ConfigError(f"{key}.{named[0]}", f"only causal_lm tasks read prompt / response or messages columns; task {task.name!r} is {task.type}")
    return settings


def _build(tasks: Sequence[TaskSpec], settings: Mapping[int, dict[str, Any]], files: tuple, ids: list[int]) -> TextFileSource:
    first = settings[ids[0]]
    if len(ids) == 1:
        source = TextFileSource(**first)
        source.config_key = f"data.sources.{tasks[ids[0]].name}"
        return source
    split_files = {"train": first["path"], "val": first["validation"], "test": first["test"]}
    labels = {tasks[i].name: (settings[i]["label"], settings[i]["classes"]) for i in ids}
    return TextFileSource.joint(split_files, first["text"], first["text_pair"], labels)
