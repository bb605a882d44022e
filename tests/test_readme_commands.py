"""The README is executable: every command in its ```bash blocks runs, as written, from a fresh copy.

Each command is run by bash from the repository root of a copy of the checkout (its tracked
files only, so outputs land in that copy's ``./logs``), in README order, with only a small
budget appended (:data:`BUDGETS`: fewer epochs and batches, or a benchmark's quick flags) and
W&B offline. It must exit 0, or with the status its README comment documents (``# exits 2: …``).

README conventions (the only things this test reads besides the commands):

* a trailing comment containing ``needs …`` (``# needs a GPU``, ``# needs a SLURM cluster``) marks
  a command that cannot run on a CPU-only machine: it is skipped with that reason;
* ``# exits N`` documents a non-zero exit status (bad-input examples);
* ``<run>``, ``<run dir>``, ``<best>`` and ``<sweep dir>`` are filled in from what the earlier
  commands wrote (the newest run with a ``last.ckpt``, its best checkpoint, the newest sweep);
  any other ``<placeholder>`` fails the test, so new ones get a rule here.

``make train`` / ``make test`` are skipped: they build ``.venv`` and run this suite (``make
test`` is how CI runs it), and ``make train`` is ``python train.py`` inside that venv, which
the block below it runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Appended to commands that start with these words; a key the command sets itself is not appended.
BUDGETS: dict[str, list[str]] = {
    "python train.py": ["trainer.max_epochs=1", "++trainer.limit_train_batches=4", "++trainer.limit_val_batches=2", "++trainer.limit_test_batches=2"],
    "python eval.py": ["++trainer.limit_test_batches=2"],
    "python scripts/bench_overhead.py": ["--epochs", "5"],
    "python scripts/bench_weighting.py": ["--no-bert", "--no-lora", "--digits-steps", "2", "--digits-rounds", "1"],
    "python scripts/bench_pruning.py": ["--quick"],
    "python scripts/bench_weighting_accuracy.py": ["--methods", "pcgrad", "--seeds", "0"],
    "python scripts/bench_causal_lm.py": ["--layers", "1", "--seq", "32", "--batch", "2", "--rounds", "1", "--new-tokens", "4"],
}
BUDGETS["peftlab-train"] = BUDGETS["python train.py"]
BUDGETS["peftlab-eval"] = BUDGETS["python eval.py"]

PLACEHOLDERS = ("<run>", "<run dir>", "<best>", "<sweep dir>")


def split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)``: the comment starts at the first ``#`` outside quotes after a space."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def readme_commands(text: str) -> list[tuple[str, str]]:
    """``(command, comment)`` for every command line of every ```bash / ```sh / ```shell block."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell)[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # line continuations
        for line in joined.splitlines():
            command, comment = split_comment(line.strip())
            if command:
                commands.append((command, comment))
    return commands


def with_budget(command: str) -> str:
    """``command`` with its budget appended (keys the command already sets are left alone)."""
    for prefix, budget in BUDGETS.items():
        if command == prefix or command.startswith(prefix + " "):
            words = shlex.split(command)
            set_keys = {w.split("=", 1)[0].lstrip("+~") for w in words if "=" in w}
            extra, i = [], 0
            while i < len(budget):
                item = budget[i]
                if item.startswith("--") and i + 1 < len(budget) and not budget[i + 1].startswith("--"):
                    if item not in words:
                        extra += [item, budget[i + 1]]
                    i += 2
                    continue
                if item.split("=", 1)[0].lstrip("+~") not in set_keys and item not in words:
                    extra.append(item)
                i += 1
            return " ".join([command, *map(shlex.quote, extra)])
    return command


def newest(paths) -> Path | None:
    """The most recently modified of ``paths`` (None if there are none)."""
    paths = list(paths)
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def fill_placeholders(command: str, repo: Path) -> str:
    """Replace the README's placeholders with what earlier commands wrote into ``repo/logs``."""
    unknown = set(re.findall(r"<[a-z][a-z ]*>", command)) - set(PLACEHOLDERS)
    assert not unknown, f"README placeholder(s) {sorted(unknown)} have no rule in tests/test_readme_commands.py"
    if not any(p in command for p in PLACEHOLDERS):
        return command
    run = newest(p.parent.parent for p in (repo / "logs").glob("*/runs/*/checkpoints/last.ckpt"))
    sweep = newest((repo / "logs").glob("*/multiruns/*"))
    if any(p in command for p in ("<run>", "<run dir>", "<best>")):
        assert run is not None, "no earlier README command left a run with checkpoints/last.ckpt"
        best = newest(run.glob("checkpoints/best*.ckpt")) or run / "checkpoints" / "last.ckpt"
        relative = run.relative_to(repo)
        command = command.replace("<run dir>", str(relative)).replace("<run>", relative.name).replace("<best>", best.stem)
    if "<sweep dir>" in command:
        assert sweep is not None, "no earlier README command left a sweep directory"
        command = command.replace("<sweep dir>", str(sweep.relative_to(repo)))
    return command


def expected_status(comment: str) -> int:
    """0, or the status a ``# exits N`` comment documents."""
    match = re.search(r"\bexits (\d+)", comment)
    return int(match.group(1)) if match else 0


def skip_reason(command: str, comment: str) -> str | None:
    """Why a command is not run here, or None."""
    if command.startswith("make "):
        return f"`{command}` builds .venv and runs this very suite (`make test` is the CI command); the commands it wraps are run below"
    match = re.search(r"\bneeds\b[^#]*", comment)
    return f"marked in the README: {match.group(0).strip()}" if match else None


COMMANDS = readme_commands(README.read_text())


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the checkout's files (as a fresh clone has them) and the environment to run in."""
    repo = tmp_path_factory.mktemp("readme") / "peftlab"
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [f for f in listed.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but outputs
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and not {".git", ".venv", "logs"} & set(p.relative_to(ROOT).parts[:1])]
    for name in files:
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    (repo / "logs").mkdir(exist_ok=True)
    bin_dir = repo.parent / "bin"  # `python` is this interpreter, as inside the activated .venv
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEFTLAB_", "WANDB_", "HYDRA_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo / "src"), WANDB_MODE="offline")
    return repo, env


@pytest.mark.slow
def test_readme_has_commands():
    assert len(COMMANDS) >= 10 and any(c.startswith("python train.py -m") for c, _ in COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("command, comment", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_command_runs_as_written(fresh_copy, command, comment):
    reason = skip_reason(command, comment)
    if reason:
        pytest.skip(reason)
    repo, env = fresh_copy
    line = with_budget(fill_placeholders(command, repo))
    result = subprocess.run(line, shell=True, executable="/bin/bash", cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    expected = expected_status(comment)
    assert result.returncode == expected, f"`{line}` exited {result.returncode}, README expects {expected}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    if expected == 2:  # bad input: one line naming the key, no traceback
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
