"""The task types by name: what ``data.tasks[i].type`` may say."""

from __future__ import annotations

from peftlab.tasks.base import TaskType

_TASK_TYPES: dict[str, TaskType] = {}


def register_task_type(cls: type[TaskType]) -> type[TaskType]:
    """Class decorator: make ``cls`` (one instance of it) the task type named ``cls.name``."""
    if not cls.name or cls.name in _TASK_TYPES:
        raise ValueError(f"task type {cls.__name__} needs a name of its own; taken: {', '.join(_TASK_TYPES)}")
    _TASK_TYPES[cls.name] = cls()
    return cls


def task_type_names() -> tuple[str, ...]:
    """Names of every registered task type, in registration order."""
    return tuple(_TASK_TYPES)


def get_task_type(name: str) -> TaskType:
    """The task type registered as ``name`` (KeyError if none is)."""
    return _TASK_TYPES[name]
