"""The frozen base of an adapter-only checkpoint is pinned: another model of the same shape saved
into the base's folder is refused on load (eval, resume, export), in one line naming the folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hf_helpers import hf_module, quick_trainer, save_tiny_bert, text_batches
from peftlab.checkpoints.base_fingerprint import folder_fingerprint
from peftlab.checkpoints.trainable_state import BASE_MODEL_KEY
from peftlab.errors import ConfigError
from peftlab.sharing import FrozenBackbone


def save_other_tiny_bert(path: Path) -> Path:
    """A BERT of exactly ``save_tiny_bert``'s shape and config, with other random weights."""
    from transformers import BertModel

    save_tiny_bert(path)
    model = BertModel.from_pretrained(path)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.save_pretrained(path)
    return path


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return save_tiny_bert(tmp_path / "base")


def adapter_only_checkpoint(base_dir: Path) -> dict:
    """What on_save_checkpoint writes for a frozen backbone: heads only, plus the base pointer."""
    module = hf_module(base_dir, FrozenBackbone())
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def swap_in_other_weights(base_dir: Path, tmp_path: Path) -> None:
    other = save_other_tiny_bert(tmp_path / "other")
    for f in other.iterdir():
        shutil.copy(f, base_dir / f.name)


def test_the_fingerprint_changes_with_the_weights_not_with_the_folders_bookkeeping(base_dir, tmp_path):
    before = folder_fingerprint(base_dir)
    copy = shutil.copytree(base_dir, tmp_path / "copy")
    assert folder_fingerprint(copy) == before  # where the folder is does not matter
    swap_in_other_weights(base_dir, tmp_path)
    after = folder_fingerprint(base_dir)
    assert after["config_sha256"] == before["config_sha256"] and after["weights_sha256"] != before["weights_sha256"]


def test_an_adapter_only_checkpoint_records_the_bases_fingerprint(base_dir):
    checkpoint = adapter_only_checkpoint(base_dir)
    assert checkpoint[BASE_MODEL_KEY]["fingerprint"] == folder_fingerprint(base_dir)
    assert not [k for k in checkpoint["state_dict"] if k.startswith("body.backbone.model.")]  # the base stays out


def test_loading_onto_the_same_base_restores_the_frozen_weights(base_dir):
    checkpoint = adapter_only_checkpoint(base_dir)
    module = hf_module(base_dir, FrozenBackbone())
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])


def test_another_model_of_the_same_shape_in_the_folder_is_refused(base_dir, tmp_path):
    checkpoint = adapter_only_checkpoint(base_dir)
    swap_in_other_weights(base_dir, tmp_path)
    module = hf_module(base_dir, FrozenBackbone())  # builds fine: same shape
    with pytest.raises(ConfigError) as err:
        module.on_load_checkpoint(checkpoint)
    message = str(err.value)
    assert message.startswith(f"model.name_or_path: {base_dir.resolve()}: its weights differ") and "\n" not in message


def test_a_checkpoint_written_before_fingerprints_still_loads(base_dir):
    checkpoint = adapter_only_checkpoint(base_dir)
    del checkpoint[BASE_MODEL_KEY]["fingerprint"]
    hf_module(base_dir, FrozenBackbone()).on_load_checkpoint(checkpoint)


@pytest.mark.slow
def test_lightning_resume_onto_a_swapped_base_is_refused(base_dir, tmp_path):
    batches = torch.utils.data.DataLoader(text_batches(n=2), batch_size=None)
    module = hf_module(base_dir, FrozenBackbone())
    trainer = quick_trainer(tmp_path / "run", max_steps=2)
    trainer.fit(module, train_dataloaders=batches)
    ckpt = trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    assert ckpt and torch.load(ckpt, weights_only=True)[BASE_MODEL_KEY]["fingerprint"] == folder_fingerprint(base_dir)
    swap_in_other_weights(base_dir, tmp_path)
    resumed = quick_trainer(tmp_path / "resumed", max_steps=4)
    with pytest.raises(ConfigError, match=r"^model\.name_or_path: .*base: its weights differ"):
        resumed.fit(hf_module(base_dir, FrozenBackbone()), train_dataloaders=batches, ckpt_path=ckpt, weights_only=True)
