"""Start a run from a dense run's weights (``strategy=prune_recover``): the recovery's starting point.

The recovery model wraps the backbone's layers in adapters (peft LoRA keeps a wrapped layer's
weight under ``<layer>.base_layer.weight``), so the dense checkpoint's names are matched with
``.base_layer`` dropped; the adapters' own weights and the pruning masks are not in it and keep
their fresh values. Loaded at ``setup`` (before the one-shot pruning at step 0); a resumed run's
checkpoint replaces these weights afterwards, as Lightning loads it after ``setup``.
"""

from __future__ import annotations

import lightning as L
import torch

from peftlab.checkpoints.safe_loading import load_checkpoint_safely
from peftlab.errors import ConfigError

KEY = "strategy.from_ckpt"


def dense_name(name: str) -> str:
    """The dense model's name of a (possibly adapter-wrapped) parameter."""
    return name.replace(".base_layer.", ".")


class InitFromDense(L.Callback):
    """Copy the dense checkpoint ``path``'s weights into the model when fitting starts.

    Args:
        path: a trained run's checkpoint (``<run dir>/checkpoints/best.ckpt`` or ``last.ckpt``) of the same model and tasks.
        state: the dense model's ``state_dict`` itself, when its run wrote no checkpoint (``callbacks=none``,
            ``debug=fast_dev_run``); ``path`` then only names where it came from.
    """

    def __init__(self, path: str, state: dict | None = None):
        self.path, self.state = str(path), state

    @torch.no_grad()
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Load every weight of the dense run whose (unwrapped) name the model has; one line if its model differs."""
        if stage != "fit":
            return
        dense = self.state if self.state is not None else load_checkpoint_safely(self.path, key=KEY)["state_dict"]
        own = pl_module.state_dict(keep_vars=True)
        missing = [name for name in own if name.startswith(("body.", "heads.")) and dense_name(name) not in dense and not _adapter_or_mask(name)]
        wrong = [name for name in own if dense_name(name) in dense and tuple(own[name].shape) != tuple(dense[dense_name(name)].shape)]
        if missing or wrong:
            what = f"lacks {missing[0]}" if missing else f"has {wrong[0]} shaped {tuple(dense[dense_name(wrong[0])].shape)}, not {tuple(own[wrong[0]].shape)}"
            raise ConfigError(KEY, f"{self.path} is not a dense run of this model (it {what}); give a checkpoint trained with the same model and data settings")
        for name, tensor in own.items():
            if dense_name(name) in dense:
                tensor.copy_(dense[dense_name(name)].to(tensor.dtype))


def _adapter_or_mask(name: str) -> bool:
    """Entries the dense run cannot have: an adapter's own weights, pruning masks."""
    return any(part in name for part in (".lora_", "lora_magnitude_vector", "_mask")) or name.endswith("_mask")
