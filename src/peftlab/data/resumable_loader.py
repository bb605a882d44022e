"""A training DataLoader that remembers how far into the epoch it is, for exact mid-epoch resume.

Lightning saves and restores the state of any training dataloader that has ``state_dict`` /
``load_state_dict`` (its stateful-dataloader protocol: the fit loop stores it in the checkpoint
and gives it back before the first batch after a resume), but it does not skip batches itself:
a plain loader would restart the epoch from its first batch and replay data already trained on.
torchdata's ``StatefulDataLoader`` does this for torch samplers; our batch samplers
(:mod:`peftlab.data.batching`) are seeded per epoch, so their position is simply (epoch, batches
already yielded), and the sampler skips that many batches of the same seeded stream when it resumes.

Batches are counted here, where the training loop receives them, not in the sampler: with
``num_workers > 0`` the DataLoader draws indices ahead of what has been trained on.
"""

from __future__ import annotations

from typing import Any, Iterator

from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a per-epoch-seeded batch sampler whose position survives checkpoints.

    The sampler must offer ``epoch``, ``resume_at(epoch, batches_done)``, ``started_epoch`` and
    ``started_skip`` (every training sampler in :mod:`peftlab.data.batching` does).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._yielded = 0  # batches handed to the training loop in the current pass

    def __iter__(self) -> Iterator[Any]:
        self._yielded = 0
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The epoch being drawn and how many of its batches the training loop has received."""
        sampler = self.sampler
        if self._yielded == 0:  # no batch yet in this pass: the position is the start of the current epoch
            return {"epoch": int(sampler.epoch), "batches_done": 0}
        return {"epoch": int(sampler.started_epoch), "batches_done": int(sampler.started_skip + self._yielded)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Make the next pass continue the saved epoch after the batches already trained on."""
        self.sampler.resume_at(int(state_dict["epoch"]), int(state_dict["batches_done"]))
