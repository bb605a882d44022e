"""One file on disk when the best checkpoint and last.ckpt hold the same step.

A run whose best epoch is its last one used to keep two copies of the same weights (two
271 MB files for a fully fine-tuned BERT-base). :func:`share_if_same_step` replaces the best
file by a hard link to ``last.ckpt`` when both were saved at the same optimizer step: both names
stay valid for ``eval.py``, ``predict.py`` and resuming, and the bytes are stored once. Writers
replace files by renaming a new one over the name (``AtomicCheckpointIO``), so a later save of
either name breaks the link instead of changing the other file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: (global_step, epoch) of a checkpoint, read without loading its tensors.
StepKey = tuple[int, int]


def saved_step(path: str | Path) -> StepKey | None:
    """``(global_step, epoch)`` stored in the Lightning checkpoint at ``path`` (None if unreadable)."""
    try:  # mmap: the tensors stay on disk; weights_only: opening the file runs no code
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["global_step"]), int(checkpoint["epoch"])
    except Exception:
        return None


def share_if_same_step(best: str | Path, last: str | Path) -> bool:
    """Make ``best`` a hard link to ``last`` when they hold the same step; True if they now share one file.

    Nothing changes when either file is missing, they hold different steps, or the file system
    has no hard links (then both copies stay, as before).
    """
    best, last = Path(best), Path(last)
    if not best.is_file() or not last.is_file() or best.resolve() == last.resolve():
        return False
    if os.path.samefile(best, last):
        return True
    step = saved_step(best)
    if step is None or step != saved_step(last):
        return False
    tmp = best.with_name(f".{best.name}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(last, tmp)
        os.replace(tmp, best)  # atomic: `best` is always a whole checkpoint
    except OSError:  # no hard links here (some network file systems): keep both copies
        tmp.unlink(missing_ok=True)
        return False
    return True
