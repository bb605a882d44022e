"""Shared test helpers: compose configs in-process, or run the real commands in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from peftlab.cli import CONFIG_DIR  # also registers the resolvers

ROOT = Path(__file__).resolve().parents[1]

# Quiet and quick defaults for tests: no progress bar or summary, few epochs.
FAST = ["callbacks=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def compose_config(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose a config as `python train.py <overrides>` would, with its run dir set to ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir.parent)
        del cfg["hydra"]  # the recipes never read it; keeps metrics.json's config small
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(*overrides)`` → a composed training config writing into a fresh temp dir."""
    counter = iter(range(1000))

    def _make(*overrides: str, config_name: str = "train", fast: bool = True) -> DictConfig:
        out = tmp_path / f"run{next(counter)}"
        out.mkdir()
        return compose_config(([*FAST] if fast and config_name == "train" else []) + list(overrides), out, config_name)

    return _make


def run_cli(script: str, *overrides: str, log_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <script> <overrides>`` from the repository root with logs under ``log_dir``."""
    cmd = [sys.executable, str(ROOT / script), *overrides, f"paths.log_dir={log_dir}"]
    env = {**os.environ, "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def metrics_files(log_dir: Path) -> list[Path]:
    """Every metrics.json under ``log_dir``, oldest first."""
    return sorted(log_dir.rglob("metrics.json"), key=lambda p: p.stat().st_mtime)


def read_json(path: Path) -> dict:
    """Parse a JSON file."""
    return json.loads(Path(path).read_text())
