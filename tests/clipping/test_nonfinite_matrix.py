"""NaN/Inf matrix: non-finite inputs, labels (hence losses) on the automatic path, the per-task
gradient path, per-task clipping and DDP (2 CPU processes): the guard counts and skips every
poisoned step, and nothing non-finite reaches the weights, the optimizer state or a checkpoint.

Each run is a real ``python train.py`` on a small local CSV (one classification and one
regression task); a callback (tests/nonfinite_helpers.py) poisons chosen batches in place.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, read_json

POISONED = [1, 3]  # first-epoch batches made non-finite (not consecutive: the run must go on)
RUN = [
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=5",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "data=local_file",
    "data.input_shape=[4]",
    "data.batch_size=16",
    "strategy.clipping.max_bad_steps=3",
]
PATHS = {
    "automatic": [],
    "per_task_gradients": ["strategy/weighting=pcgrad"],
    "per_task_clipping": ["strategy/clipping=per_task"],
    "ddp": ["trainer=ddp_sim"],
    "ddp_per_task_gradients": ["trainer=ddp_sim", "strategy/weighting=pcgrad"],
}
# every path sees NaN inputs and Inf labels (an Inf loss); the other two kinds on the automatic path
CASES = [(p, k) for p in PATHS for k in ("inputs_nan", "labels_inf")] + [("automatic", "inputs_inf"), ("automatic", "labels_nan")]


def _write_csv(path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f0", "f1", "f2", "f3", "y_a", "y_b"])
        for row in x.tolist():
            w.writerow([*(f"{v:.5f}" for v in row), int(row[0] > 0), f"{row[1] - row[2]:.5f}"])
    return path


def _all_finite(ckpt: Path) -> bool:
    c = torch.load(ckpt, map_location="cpu", weights_only=False)
    tensors = [v for v in c["state_dict"].values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    for opt in c["optimizer_states"]:
        for s in opt["state"].values():
            tensors += [v for v in s.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return bool(tensors) and all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "kind"), CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_nonfinite_steps_are_counted_skipped_and_never_stored(tmp_path, path, kind):
    data = _write_csv(tmp_path / "data.csv")
    run_dir = tmp_path / "run"
    poison = ["+callbacks.poison._target_=nonfinite_helpers.PoisonBatches", f"+callbacks.poison.what={kind}", f"+callbacks.poison.batches={POISONED}".replace(" ", "")]
    if path.startswith("ddp"):
        poison.append("+callbacks.poison.rank=1")  # one rank's batch only: both ranks must skip together
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "train.py"), *RUN, *PATHS[path], f"data.source.path={data}", *poison, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "completed"
    rows = [r for f in run_dir.rglob("metrics.csv") for r in csv.DictReader(open(f))]
    skipped = [float(r["train/skipped_steps"]) for r in rows if r.get("train/skipped_steps")]
    assert skipped and max(skipped) == len(POISONED)
    ckpts = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert ckpts and all(_all_finite(c) for c in ckpts)
    assert all(v == v and abs(v) != float("inf") for v in metrics["alpha"].values())
