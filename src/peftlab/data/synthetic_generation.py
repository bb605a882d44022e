"""Toy generation tasks with exact answers (reverse a digit string, add two numbers), written to
JSON-lines files and read back as ``data=text_files`` reads a causal-LM task's files."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from peftlab.checkpoints.atomic_files import write_text_atomic
from peftlab.data.table import LabelledTable
from peftlab.data.text_files import TextFileSource, absolute_path
from peftlab.errors import ConfigError

SPLITS = ("train", "validation", "test")


def reverse_row(rng: random.Random, digits: tuple[int, int]) -> dict[str, str]:
    """``reverse 4721=`` → ``1274`` (a digit string of ``digits[0]``..``digits[1]`` digits)."""
    text = "".join(rng.choice("0123456789") for _ in range(rng.randint(*digits)))
    return {"prompt": f"reverse {text}=", "response": text[::-1]}


def add_row(rng: random.Random, digits: tuple[int, int]) -> dict[str, str]:
    """``add 12+30=`` → ``42`` (two numbers of ``digits[0]``..``digits[1]`` digits)."""
    a, b = (rng.randint(0, 10 ** rng.randint(*digits) - 1) for _ in range(2))
    return {"prompt": f"add {a}+{b}=", "response": str(a + b)}


TASKS = {"reverse": reverse_row, "add": add_row}


class SyntheticGeneration:
    """Prompt / response rows of one toy task, generated from ``seed`` (the same files every time).

    The rows are written once to ``<directory>/<task>-<seed>-<sizes>/{train,validation,test}.jsonl``
    (columns ``prompt``, ``response``; look at them, or train on them with ``data=text_files``)
    and then read through :class:`~peftlab.data.text_files.TextFileSource`. With ``held_out``
    (the default) the validation and test prompts are drawn among those training never shows, so
    exact match measures the task learnt, not rows remembered (``add`` up to 2 digits has only
    10^4 prompts: 30,000 training rows hold about 6,200 of them). Without it each split is drawn
    independently; :meth:`seen_in_training` counts the overlap.

    Args:
        task: ``reverse`` or ``add``.
        directory: where the files go (e.g. ``${paths.data_dir}/synthetic``).
        train, validation, test: rows per split.
        digits: ``[fewest, most]`` digits of the string (reverse) or of each number (add).
        seed: the generator's seed (each split has its own stream).
        held_out: validation / test prompts never occur in training.
    """

    config_key = "data.source"  # data.sources.<task> when a task reads it

    def __init__(self, task: str, directory: str, train: int = 4000, validation: int = 200, test: int = 200, digits: tuple[int, int] = (1, 2), seed: int = 0, held_out: bool = True):
        if not isinstance(task, str) or task not in TASKS:
            raise ConfigError(f"{self.config_key}.task", f"must be one of {', '.join(TASKS)}; got {task!r}")
        ints = isinstance(digits, Sequence) and not isinstance(digits, str) and len(digits) == 2 and all(isinstance(d, int) and not isinstance(d, bool) for d in digits)
        lo, hi = (digits[0], digits[1]) if ints else (0, 0)
        if not ints or not 1 <= lo <= hi:
            raise ConfigError(f"{self.config_key}.digits", f"must be [fewest, most] (integers) with 1 <= fewest <= most; got {digits!r}")
        for name, n in (("train", train), ("validation", validation), ("test", test)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"{self.config_key}.{name}", f"must be a positive number of rows; got {n!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{self.config_key}.seed", f"must be an integer; got {seed!r}")
        if not isinstance(held_out, bool):
            raise ConfigError(f"{self.config_key}.held_out", f"must be true or false; got {held_out!r}")
        self.task, self.digits, self.seed, self.held_out = task, (lo, hi), int(seed), held_out
        self.sizes = {"train": train, "validation": validation, "test": test}
        name = f"{task}-{seed}-{lo}_{hi}-{train}_{validation}_{test}" + ("-held_out" if held_out else "")
        self.folder = absolute_path(directory) / name

    def rows(self, split: str) -> list[dict[str, str]]:
        """The rows of ``split`` (deterministic: ``seed`` and the split name fix them)."""
        rng = random.Random(f"{self.task}/{self.seed}/{split}")
        make = TASKS[self.task]
        if split == "train" or not self.held_out:
            return [make(rng, self.digits) for _ in range(self.sizes[split])]
        seen = {row["prompt"] for row in self.rows("train")}
        rows: list[dict[str, str]] = []
        for _ in range(1000 * self.sizes[split]):  # rejection sampling; bounded when few prompts are left
            row = make(rng, self.digits)
            if row["prompt"] not in seen:
                rows.append(row)
                if len(rows) == self.sizes[split]:
                    return rows
        raise ConfigError(f"{self.config_key}.held_out", f"training covers (nearly) every {self.task} prompt of {list(self.digits)} digits: fewer training rows, more digits, or held_out=false")

    def seen_in_training(self, split: str = "test") -> float:
        """Share of ``split``'s rows whose prompt also occurs in the training rows."""
        train = {row["prompt"] for row in self.rows("train")}
        rows = self.rows(split)
        return sum(row["prompt"] in train for row in rows) / len(rows)

    def write(self) -> Path:
        """Write the three files unless they are already there; returns their folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            path = self.folder / f"{split}.jsonl"
            if path.is_file():
                continue
            write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in self.rows(split)))  # a reader sees the whole file or none
        return self.folder

    def load(self) -> dict[str, LabelledTable]:
        """The three splits, read from their files."""
        folder = self.write()
        source = TextFileSource(str(folder / "train.jsonl"), str(folder / "validation.jsonl"), str(folder / "test.jsonl"), prompt="prompt", response="response")
        source.config_key = self.config_key
        return source.load()
