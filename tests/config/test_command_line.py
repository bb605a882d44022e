"""Command-line arguments that are neither Hydra flags nor valid overrides get one line; the rest pass."""

from __future__ import annotations

import pytest

from peftlab.config.command_line import misused_argument


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "job"],
        ["-m", "seed=1,2"],
        ["--multirun", "seed=range(3)"],
        ["~callbacks.lr_monitor"],
        ["+trainer.x=1", "--info"],
        ["--info", "config"],
        ["-cn", "eval", "ckpt_path=a.ckpt"],
        ["--config-name=eval"],
        ["--help"],
        ["strategy=glob(*)"],
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
    ],
)
def test_what_hydra_accepts_passes(args):
    assert misused_argument(args) is None


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["data.batch_size"], "data.batch_size: an override needs a value: data.batch_size=<value>"),
        (["--epochs", "3"], "--epochs: not an option; settings are key=value overrides"),
        (["seed=1", "-x"], "-x: not an option"),
        (["data.batch_size=[1"], "data.batch_size: not a valid override (no viable alternative at input '[1')"),
    ],
)
def test_misuse_is_named(args, line):
    assert misused_argument(args).startswith(line)
