"""Shared test helpers: compose configs in-process, or run the real commands in a subprocess.

Tiers: `make test` runs ``-m "not slow and not slurm"`` and says how many tests it left to
`make test-all`, which runs everything (the `slurm` tests start a local cluster only when
PEFTLAB_SLURM_TESTS=1, which `make test-all` sets). Markers are described in pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

import peftlab.cli  # noqa: F401  (registers the config resolvers)
from peftlab.config.compose import compose_train_config

ROOT = Path(__file__).resolve().parents[1]

# Quiet and quick defaults for tests: no progress bar or summary, few epochs.
FAST = ["callbacks=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def compose_config(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose a config as `python train.py <overrides>` would, with its run dir set to ``output_dir``."""
    return compose_train_config(overrides, output_dir, config_name)


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(*overrides)`` → a composed training config writing into a fresh temp dir."""
    counter = iter(range(1000))

    def _make(*overrides: str, config_name: str = "train", fast: bool = True) -> DictConfig:
        out = tmp_path / f"run{next(counter)}"
        out.mkdir()
        return compose_config(([*FAST] if fast and config_name == "train" else []) + list(overrides), out, config_name)

    return _make


@pytest.fixture(scope="session")
def base_cfg(tmp_path_factory) -> DictConfig:
    """The default training config exactly as ``make_cfg()`` composes it, composed once per session.

    Read-only: for tests that only read the default config; a test that changes a config uses ``make_cfg``.
    """
    cfg = compose_config(list(FAST), tmp_path_factory.mktemp("base_cfg"))
    OmegaConf.set_readonly(cfg, True)
    return cfg


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


# ---- tiers: say what `make test` left out ---------------------------------------------------------

TIER_MARKS = ("slow", "slurm")
_left_to_test_all: list[str] = []


def pytest_deselected(items):
    """Remember deselected tests that belong to a slower tier (marked slow or slurm)."""
    _left_to_test_all.extend(item.nodeid for item in items if any(item.get_closest_marker(m) for m in TIER_MARKS))


def pytest_terminal_summary(terminalreporter):
    """One line naming how many slow/slurm tests this run left out and the command that runs them."""
    if _left_to_test_all:
        terminalreporter.write_line(f"{len(_left_to_test_all)} tests marked slow or slurm were left out: `make test-all` runs them")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A completed tiny run that the bad-input catalogues hash before and after every case."""
    from bad_input_harness import TINY, run_command

    log = tmp_path_factory.mktemp("finished")
    run_dir = log / "run"
    proc = run_command("train.py", [*TINY, f"hydra.run.dir={run_dir}"], log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir
