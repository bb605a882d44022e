"""Toy generation tasks with exact answers (reverse a digit string, add two numbers), written to
JSON-lines files and read back as ``data=text_files`` reads a causal-LM task's files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

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
    and then read through :class:`~peftlab.data.text_files.TextFileSource`. Each split is drawn
    independently, so a test prompt may also occur in training: with few possible prompts (``add``
    up to 2 digits has at most 10^4) many do; :meth:`seen_in_training` counts them.

    Args:
        task: ``reverse`` or ``add``.
        directory: where the files go (e.g. ``${paths.data_dir}/synthetic``).
        train, validation, test: rows per split.
        digits: ``[fewest, most]`` digits of the string (reverse) or of each number (add).
        seed: the generator's seed (each split has its own stream).
    """

    config_key = "data.source"  # data.sources.<task> when a task reads it

    def __init__(self, task: str, directory: str, train: int = 4000, validation: int = 200, test: int = 200, digits: tuple[int, int] = (1, 2), seed: int = 0):
        if task not in TASKS:
            raise ConfigError(f"{self.config_key}.task", f"must be one of {', '.join(TASKS)}; got {task!r}")
        lo, hi = (int(d) for d in digits)
        if not 1 <= lo <= hi:
            raise ConfigError(f"{self.config_key}.digits", f"must be [fewest, most] with 1 <= fewest <= most; got {list(digits)}")
        for name, n in (("train", train), ("validation", validation), ("test", test)):
            if not isinstance(n, int) or n < 1:
                raise ConfigError(f"{self.config_key}.{name}", f"must be a positive number of rows; got {n!r}")
        self.task, self.digits, self.seed = task, (lo, hi), int(seed)
        self.sizes = {"train": train, "validation": validation, "test": test}
        self.folder = absolute_path(directory) / f"{task}-{seed}-{lo}_{hi}-{train}_{validation}_{test}"

    def rows(self, split: str) -> list[dict[str, str]]:
        """The rows of ``split`` (deterministic: ``seed`` and the split name fix them)."""
        rng = random.Random(f"{self.task}/{self.seed}/{split}")
        return [TASKS[self.task](rng, self.digits) for _ in range(self.sizes[split])]

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
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("".join(json.dumps(row) + "\n" for row in self.rows(split)))
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        return self.folder

    def load(self) -> dict[str, LabelledTable]:
        """The three splits, read from their files."""
        folder = self.write()
        source = TextFileSource(str(folder / "train.jsonl"), str(folder / "validation.jsonl"), str(folder / "test.jsonl"), prompt="prompt", response="response")
        source.config_key = self.config_key
        return source.load()
