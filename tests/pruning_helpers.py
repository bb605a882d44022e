"""Helpers shared by the pruning and export tests (small models, one-thread fixture, mask reading)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

# a short prune_share run: 2 epochs x 20 steps = 40 optimizer steps, pruning between steps 0 and 30
SHORT = ["strategy=prune_share", "strategy.pruning.start_step=0", "strategy.pruning.end_step=30", "strategy.pruning.every_n_steps=10"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One intra-op thread: on a shared 2-core machine OpenMP spinning makes tiny ops 1000x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


class Net(nn.Module):
    """A stand-in for MultiTaskModule: ``body`` (an MLP) and ``heads``."""

    def __init__(self, widths=(16, 32, 32)):
        super().__init__()
        torch.manual_seed(0)
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.Linear(widths[-1], 3)

    def forward(self, x):
        return self.heads(self.body(x))


def checkpoint_masks(path) -> dict[str, torch.Tensor]:
    """Every ``*_mask`` entry of a Lightning checkpoint."""
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in sd.items() if k.endswith("_mask")}


class Crash(Exception):
    """Stands in for a killed job."""


class CrashAtEpoch:
    """A Lightning callback that kills training when epoch ``epoch`` starts (after last.ckpt of the previous one)."""

    def __new__(cls, epoch: int):
        import lightning as L

        class _Crash(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == epoch:
                    raise Crash(f"killed at epoch {epoch}")

        return _Crash()
