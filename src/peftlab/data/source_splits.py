"""One source's data as train/val/test tables with one label column per task (NaN: not labelled)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from sklearn.model_selection import train_test_split

from peftlab.data.table import LabelledTable
from peftlab.errors import ConfigError
from peftlab.tasks import TaskSpec

SPLITS = ("train", "val", "test")
STRATIFY = "\0stratify"  # label column the split is stratified by (not a task)


def load_source_splits(
    key: str,
    source: Any,
    tasks: Sequence[TaskSpec],
    task_ids: list[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    prepare: Callable[[LabelledTable], LabelledTable] = lambda t: t,
) -> dict[str, LabelledTable]:
    """Load ``source`` (config key ``key``), which serves ``tasks[i]`` for ``i`` in ``task_ids``.

    ``source.load()`` returns one table (split here: ``test_fraction`` and ``val_fraction`` held
    out) or ``{"train", "val"?, "test"?}`` (a missing val/test is carved out of train). Each
    table is passed through ``prepare`` (tokenisation), its labels checked, and reshaped to one
    column per task of ``tasks`` (NaN for the tasks of other sources); rows labelled for none of
    the source's tasks are dropped. Splits are seeded, and stratified by the source's
    ``stratify_label`` or, for a task's own source, by its labels when its task type stratifies
    (classification).
    """
    loaded = source.load()
    given = dict(loaded) if isinstance(loaded, Mapping) else {}
    if given and ("train" not in given or set(given) - set(SPLITS)):
        raise ConfigError(key, f"load() returned splits {sorted(given)}; expected train and optionally val, test")
    _check_classes(key, source, tasks, task_ids)
    strat = getattr(source, "stratify_label", None)
    tables = {s: _task_columns(key, s, prepare(t), tasks, task_ids, strat) for s, t in (given or {"train": loaded}).items()}
    try:
        return _carved(dict(tables), val_fraction, test_fraction, seed)
    except ValueError:  # scikit-learn: a split would be empty
        n, given = len(tables["train"]), sorted(set(tables) - {"train"})
        need = min_rows(val_fraction, test_fraction, given)
        where = str(getattr(source, "path", "") or key)
        raise ConfigError(
            where,
            f"{n} row(s) are too few to carve {' and '.join(s for s in ('val', 'test') if s not in given)} out of it (data.val_fraction={val_fraction}, data.test_fraction={test_fraction}); it needs at least {need} rows",
        ) from None


def _carved(tables: dict[str, LabelledTable], val_fraction: float, test_fraction: float, seed: int) -> dict[str, LabelledTable]:
    """``tables`` with the missing val/test splits carved out of train."""
    if "test" not in tables:
        tables["train"], tables["test"] = _carve(tables["train"], test_fraction + (0 if "val" in tables else val_fraction), seed)
        if "val" not in tables:  # the held-out part is split again into val and test
            tables["val"], tables["test"] = _carve(tables["test"], test_fraction / (val_fraction + test_fraction), seed)
    if "val" not in tables:
        tables["train"], tables["val"] = _carve(tables["train"], val_fraction, seed)
    return tables


def min_rows(val_fraction: float, test_fraction: float, given: Sequence[str] = ()) -> int:
    """The fewest rows a train file needs so that carving out the missing val/test splits leaves no
    split empty (found by trying the same scikit-learn splits, not by restating its rounding)."""
    for n in range(1, 10_000):
        empty = {s: LabelledTable(torch.zeros(0, 1), {}) for s in given}
        try:
            _carved({"train": LabelledTable(torch.zeros(n, 1), {}), **empty}, val_fraction, test_fraction, 0)
            return n
        except ValueError:
            continue
    return 10_000


def _check_classes(key: str, source: Any, tasks: Sequence[TaskSpec], task_ids: list[int]) -> None:
    """A task's own source that names its classes (``classes``) must name as many as the task has."""
    if key == "data.source":
        return
    by_task = getattr(source, "task_classes", None) or {tasks[task_ids[0]].name: getattr(source, "classes", None)}
    for i in task_ids:
        task, classes = tasks[i], by_task.get(tasks[i].name)
        if classes is not None and len(classes) != task.num_classes:
            raise ConfigError(f"data.tasks[{i}].num_classes", f"is {task.num_classes} but data.sources.{task.name}.classes names {len(classes)}: {list(classes)}")


def _task_columns(key: str, split: str, table: LabelledTable, tasks: Sequence[TaskSpec], task_ids: list[int], strat: str | None) -> LabelledTable:
    """The rows labelled for at least one of the source's tasks, one label column per task, plus
    the stratification column."""
    n = len(table)
    columns = {t.name: torch.full((n,), float("nan")) for t in tasks}
    if strat is not None and strat in table.labels:
        columns[STRATIFY] = table.labels[strat]
    elif strat is None and len(task_ids) == 1 and tasks[task_ids[0]].task_type.stratify:
        columns[STRATIFY] = _label_column(key, table, tasks, task_ids[0])
    for i in task_ids:
        task = tasks[i]
        column = _label_column(key, table, tasks, i)
        problem = task.task_type.check_labels(column, task)
        if problem is not None:
            row, field, rule = problem
            raise ConfigError(
                f"data.tasks[{i}].{field}",
                f"labels of task {task.name!r} must be {rule}; {key} ({split} split) row {row + 1} has {column[row].item():g}",
            )
        columns[task.name] = task.task_type.label_column(column)
    labelled = torch.stack([columns[tasks[i].name] for i in task_ids], 1).isnan().logical_not().any(1)
    table = LabelledTable(table.x, columns)
    return table if bool(labelled.all()) else table.subset(torch.nonzero(labelled).flatten())


def _label_column(key: str, table: LabelledTable, tasks: Sequence[TaskSpec], i: int) -> torch.Tensor:
    """Task ``i``'s labels: its ``label`` column of the shared source, the one label column of its own source."""
    task = tasks[i]
    if key != "data.source" and len(table.labels) == 1:
        column = next(iter(table.labels.values()))
    elif key != "data.source" and task.name in table.labels:  # a joint source names its columns by task
        column = table.labels[task.name]
    elif task.label not in table.labels:
        raise ConfigError(f"data.tasks[{i}].label", f"unknown label {task.label!r} in {key}; allowed: {', '.join(table.labels)}")
    else:
        column = table.labels[task.label]
    infinite = torch.nonzero(column.isinf()).flatten()
    if len(infinite):  # a source's own reader names file, row and column; this catches any other source
        raise ConfigError(key, f"label of task {task.name!r} in row {int(infinite[0]) + 1} is {column[infinite[0]].item()}: labels must be finite numbers")
    return column


def _carve(table: LabelledTable, fraction: float, seed: int) -> tuple[LabelledTable, LabelledTable]:
    """Split ``table`` into (rest, held-out ``fraction``), seeded and stratified when possible."""
    rows = torch.arange(len(table)).numpy()
    labels = table.labels.get(STRATIFY)
    stratify = labels.numpy() if labels is not None and not bool(labels.isnan().any()) else None
    try:
        keep, held = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # a class too rare to stratify: plain random split (too few rows: the ValueError goes on)
        keep, held = train_test_split(rows, test_size=fraction, random_state=seed)
    return table.subset(torch.as_tensor(keep)), table.subset(torch.as_tensor(held))
