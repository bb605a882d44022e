"""A config read from a checkpoint or an export supplies values, never importable names, and never
switches on trust_remote_code (peftlab.checkpoints.safe_build); the real commands are in
tests/checkpoints/test_bad_inputs_checkpoints.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from peftlab.checkpoints.safe_build import allowed_targets, buildable_config
from peftlab.checkpoints.safe_loading import load_checkpoint_safely
from peftlab.errors import ConfigError
from peftlab.export import load_exported
from peftlab.pruning.compaction import FORMAT


def stored(**model) -> dict:
    """A resolved training config as ConfigInCheckpoint stores it (the parts that matter here)."""
    return {
        "data": {"_target_": "peftlab.data.MultiTaskDataModule", "batch_size": 8},
        "model": {
            "_target_": "peftlab.models.MultiTaskModule",
            "trust_remote_code": False,
            "backbone": {"_target_": "peftlab.models.HFBackbone", "_partial_": True, "name_or_path": "/models/bert", "trust_remote_code": False},
            "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
            **model,
        },
        "strategy": {"sharing": {"_target_": "peftlab.sharing.FrozenBackbone"}},
    }


def test_allowed_targets_are_those_of_peftlabs_config_tree():
    targets = allowed_targets()
    assert {"peftlab.models.MultiTaskModule", "peftlab.models.HFBackbone", "torch.optim.AdamW", "peftlab.data.DigitsSource"} <= targets
    assert not {"builtins.open", "torch.load", "os.system"} & targets


def test_a_stored_config_of_peftlabs_components_builds_unchanged():
    cfg = buildable_config(stored(), "run.ckpt", "ckpt_path")
    assert cfg.model.backbone.name_or_path == "/models/bert" and cfg.model.optimizer.lr == 1e-3


def test_an_optimizer_swapped_in_at_training_time_is_accepted():
    cfg = buildable_config(stored(optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}), "run.ckpt", "ckpt_path")
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"


@pytest.mark.parametrize(
    "section, target",
    [("data", "builtins.open"), ("data", "torch.load"), ("model.backbone", "os.system"), ("model.optimizer", "torch.optim.Optimizer.load_state_dict")],
)
def test_a_stored_target_outside_peftlabs_components_is_one_error_naming_the_key(section, target):
    config = stored()
    node = config
    for part in section.split("."):
        node = node[part]
    node["_target_"] = target
    with pytest.raises(ConfigError) as err:
        buildable_config(config, "crafted.ckpt", "ckpt_path")
    message = str(err.value)
    assert message.startswith("ckpt_path: crafted.ckpt:") and f"{section}._target_='{target}'" in message and "\n" not in message


def test_a_stored_target_nested_in_a_list_is_checked():
    config = stored(tasks=[{"name": "a", "head": {"_target_": "subprocess.run", "args": ["touch", "x"]}}])
    with pytest.raises(ConfigError, match=r"model\.tasks\[0\]\.head\._target_='subprocess\.run'"):
        buildable_config(config, "crafted.ckpt", "ckpt_path")


def test_a_stored_target_nested_in_a_tuple_is_checked():
    # weights_only loading allows tuples; OmegaConf turns them into lists that Hydra instantiates
    config = stored(extra=({"_target_": "builtins.exec", "_args_": ["open('marker', 'w')"]},))
    with pytest.raises(ConfigError, match=r"model\.extra\[0\]\."):
        buildable_config(config, "crafted.pt", "path")


def test_positional_arguments_are_refused():
    # HFBackbone's third positional argument is trust_remote_code: _args_ would pass it past the keyword check
    backbone = {"_target_": "peftlab.models.HFBackbone", "_partial_": True, "_args_": ["attacker/repo", "cls", True]}
    with pytest.raises(ConfigError, match=r"model\.backbone\._args_"):
        buildable_config(stored(backbone=backbone), "crafted.ckpt", "ckpt_path")


def test_a_target_that_is_not_a_string_is_one_error():
    with pytest.raises(ConfigError, match=r"model\.backbone\._target_"):
        buildable_config(stored(backbone={"_target_": [1]}), "crafted.ckpt", "ckpt_path")


def test_a_stored_interpolation_is_refused():
    with pytest.raises(ConfigError, match=r"model\.backbone\.name_or_path holds an interpolation"):
        buildable_config(stored(backbone={"_target_": "peftlab.models.HFBackbone", "name_or_path": "${oc.env:HOME}"}), "crafted.ckpt", "ckpt_path")


def test_trust_remote_code_comes_only_from_the_caller():
    config = stored()
    config["model"]["backbone"]["trust_remote_code"] = True
    with pytest.raises(ConfigError, match=r"sets model\.backbone\.trust_remote_code=true.*pass trust_remote_code=true on the command line"):
        buildable_config(config, "crafted.ckpt", "ckpt_path")
    allowed = buildable_config(config, "crafted.ckpt", "ckpt_path", trust_remote_code=True)
    assert allowed.model.backbone.trust_remote_code is True and allowed.model.trust_remote_code is True
    # the command line's true is what every trust_remote_code key gets; a stored false stays false without it
    assert buildable_config(stored(), "run.ckpt", "ckpt_path").model.backbone.trust_remote_code is False


def test_load_exported_refuses_a_crafted_config_before_building(tmp_path: Path):
    marker = tmp_path / "MARKER"
    payload = {"format": FORMAT, "config": {"model": {"_target_": "builtins.open", "file": str(marker), "mode": "w"}}, "state_dict": {}}
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(ConfigError) as err:
        load_exported(str(tmp_path / "model.pt"))
    assert str(err.value).startswith("path: ") and "model._target_='builtins.open'" in str(err.value)
    assert not marker.exists()


class _OpensAFile:
    """Unpickled without weights_only, this creates the file at ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_weights_only_refuses_is_reported_as_such_not_as_truncated(tmp_path: Path):
    import pickle

    marker = tmp_path / "MARKER"
    (tmp_path / "plain.ckpt").write_bytes(pickle.dumps({"state_dict": {}, "hook": _OpensAFile(str(marker))}))
    with pytest.raises(ConfigError, match=r"holds Python objects that weights_only loading refuses \(it could run code\)"):
        load_checkpoint_safely(tmp_path / "plain.ckpt", mmap=True)
    assert not marker.exists()


@pytest.mark.parametrize("version, says", [(None, "has no 'pytorch-lightning_version' entry"), ("0.7.6", "written by Lightning '0.7.6'"), ("not-a-version", "Lightning 'not-a-version'")])
def test_a_checkpoint_without_a_lightning_2_version_is_one_line(tmp_path: Path, version, says):
    checkpoint = {"state_dict": {"w": torch.zeros(1)}, **({"pytorch-lightning_version": version} if version else {})}
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.raises(ConfigError) as err:
        load_checkpoint_safely(tmp_path / "old.ckpt")
    assert str(err.value).startswith(f"ckpt_path: {tmp_path / 'old.ckpt'}: ") and says in str(err.value)
