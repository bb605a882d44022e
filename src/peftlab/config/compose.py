"""Compose the training config outside a Hydra run: for scripts, tests and notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, open_dict


def compose_train_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None, config_name: str = "train") -> DictConfig:
    """The config ``python train.py <overrides>`` would run with.

    Hydra's runtime is set as in a real run (so ``${hydra:...}`` interpolations resolve), then
    the ``hydra`` node is dropped. ``output_dir`` replaces the run directory (and its parent
    becomes ``paths.log_dir``).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from peftlab.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(Path(output_dir).parent)
        del cfg["hydra"]
    return cfg
