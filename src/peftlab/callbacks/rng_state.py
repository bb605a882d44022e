"""Saves and restores the random number generators with each checkpoint.

Lightning restores weights, optimizer, scheduler and loop counters on resume, but not the RNG
streams (dropout masks, random task weights), so a resumed run would drift from the
uninterrupted one. With this callback, resuming from a checkpoint written at an epoch boundary
gives bit-identical weights.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist


class RngStateInCheckpoint(L.Callback):
    """Stores the Python, NumPy and torch (CPU and CUDA) RNG states of every rank in every checkpoint.

    Under DDP each rank draws its own dropout masks, but only rank 0 writes the checkpoint, so the
    states of all ranks are gathered (Lightning builds the checkpoint on every rank before rank 0
    writes it, so the collective is reached by all) and each rank takes back its own on resume.
    """

    def state_dict(self) -> dict[str, Any]:
        """This rank's RNG states, plus every rank's under DDP (called when a checkpoint is saved)."""
        state = self._own_state()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            states: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(states, state)
            state = {**state, "per_rank": states}
        return state

    def _own_state(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types only: Lightning loads checkpoints with torch.load(weights_only=True)
        numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
        state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Put this rank's saved RNG states back (called when training resumes from a checkpoint).

        A checkpoint from a run with another number of ranks gives every rank rank 0's states.
        """
        per_rank = state_dict.get("per_rank")
        if per_rank and dist.is_available() and dist.is_initialized() and dist.get_world_size() == len(per_rank):
            state_dict = per_rank[dist.get_rank()]
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
