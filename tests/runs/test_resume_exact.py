"""Exact resume anywhere: a run SIGKILLed mid-epoch and resumed from last.ckpt ends with the same
weights, masks, α / weighting state and optimizer state as the uninterrupted run (1e-6).

The killed run is a real ``python train.py`` subprocess that dies by SIGKILL right after a
mid-epoch step checkpoint (callbacks.step_checkpoint); the uninterrupted and resumed runs run in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from peftlab.train import train

EPOCHS, BATCHES, EVERY = 3, 4, 2  # 3 epochs of 4 batches, a checkpoint every 2 optimizer steps
BASE = [
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    f"trainer.max_epochs={EPOCHS}",
    f"++trainer.limit_train_batches={BATCHES}",
    f"callbacks.step_checkpoint.every_n_train_steps={EVERY}",
]
PRUNE = ["strategy=prune_share", "strategy.pruning.start_step=0.1", "strategy.pruning.end_step=0.8", "strategy.pruning.every_n_steps=0.1"]

CASES = {
    "automatic": ([], 6),
    "per_task_pcgrad": (["strategy/weighting=pcgrad"], 6),
    "uncertainty": (["strategy/weighting=uncertainty"], 6),
    "dwa": (["strategy/weighting=dwa"], 10),  # epoch 2, partial sums of 2 batches in the checkpoint
    "famo": (["strategy/weighting=famo"], 6),
    "gradnorm": (["strategy/weighting=gradnorm"], 6),
    "rlw": (["strategy/weighting=rlw"], 6),
    "db_mtl": (["strategy/weighting=db_mtl"], 6),
    "moco": (["strategy/weighting=moco"], 6),
    "nash_mtl": (["strategy/weighting=nash_mtl", "strategy.weighting.update_weights_every=4"], 6),  # killed between two recomputations: cached α in use
    "excess_mtl": (["strategy/weighting=excess_mtl", "strategy.weighting.n_warmup_steps=4"], 6),
    "cr_mogm": (["strategy/weighting=cr_mogm"], 6),
    "modo": (["strategy/weighting=modo"], 6),
    "sdmgrad": (["strategy/weighting=sdmgrad"], 6),
    "stch": (["strategy/weighting=stch", "strategy.weighting.warmup_epochs=1"], 6),  # epoch 1: the nadir's partial sums in the checkpoint
    "magnitude": ([*PRUNE, "strategy/pruning=magnitude"], 6),
    "movement": ([*PRUNE, "strategy/pruning=movement"], 6),
    "accumulation": (["trainer.accumulate_grad_batches=2", "callbacks.step_checkpoint.every_n_train_steps=1"], 3),
}


def _kill_mid_epoch(overrides: list[str], run_dir: Path, step: int) -> Path:
    """Run train.py until it is SIGKILLed after optimizer step ``step``; its last.ckpt."""
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}", "+callbacks.kill._target_=kill_helpers.KillAtStep", f"+callbacks.kill.step={step}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return run_dir / "checkpoints" / "last.ckpt"


def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    """Every tensor a resume depends on: module state (weights, masks, weighting), optimizer state."""
    c = torch.load(ckpt, map_location="cpu", weights_only=False)
    out = {f"model/{k}": v for k, v in c["state_dict"].items() if isinstance(v, torch.Tensor)}
    for k, v in c["state_dict"].items():  # extra state of a module (DWA's partial-epoch sums, FAMO's logits)
        if isinstance(v, dict):
            out.update({f"model/{k}/{name}": t for name, t in v.items() if isinstance(t, torch.Tensor)})
    for i, opt in enumerate(c["optimizer_states"]):
        for p, s in opt["state"].items():
            out.update({f"opt{i}/{p}/{k}": v for k, v in s.items() if isinstance(v, torch.Tensor)})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(make_cfg, tmp_path, case):
    extra, kill_step = CASES[case]
    overrides = [*BASE, *extra]
    full = train(make_cfg(*overrides, fast=False))
    last = _kill_mid_epoch(overrides, tmp_path / "killed", kill_step)
    saved = torch.load(last, map_location="cpu", weights_only=False)
    steps_per_epoch = BATCHES // (2 if case == "accumulation" else 1)
    assert saved["global_step"] == kill_step and kill_step % steps_per_epoch != 0  # really mid-epoch
    resumed = train(make_cfg(*overrides, f"ckpt_path={last}", fast=False))

    a = _state(Path(full["run_dir"]) / "checkpoints" / "last.ckpt")
    b = _state(Path(resumed["run_dir"]) / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0, equal_nan=True), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
    assert resumed["alpha"] == pytest.approx(full["alpha"], abs=1e-6)
    if "pruning" in full:
        assert resumed["pruning"]["history"] == full["pruning"]["history"]


def _loaders():
    from peftlab.data.batching import MixedTaskBatches, MultiTaskTensors, ShuffledBatches
    from peftlab.data.resumable_loader import ResumableLoader

    data = MultiTaskTensors(torch.arange(50.0).unsqueeze(1), torch.zeros(50, 2), torch.ones(50, 2, dtype=torch.bool))
    samplers = {
        "shuffled": lambda: ShuffledBatches(50, 4, seed=3),
        "mixed": lambda: MixedTaskBatches([torch.arange(0, 30), torch.arange(30, 50)], [0.6, 0.4], 4, seed=3),
    }
    return {k: (lambda make=make: ResumableLoader(data, sampler=make(), batch_size=None)) for k, make in samplers.items()}


@pytest.mark.parametrize("kind", ["shuffled", "mixed"])
def test_loader_state_resumes_the_same_batches_mid_epoch(kind):
    make = _loaders()[kind]
    full = make()
    full.sampler.set_epoch(2)
    expected = [b["inputs"].flatten().tolist() for b in full]
    interrupted = make()
    interrupted.sampler.set_epoch(2)
    it = iter(interrupted)
    seen = [next(it)["inputs"].flatten().tolist() for _ in range(5)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches_done": 5}
    resumed = make()  # a fresh process: epoch 0, no position
    resumed.load_state_dict(state)
    rest = [b["inputs"].flatten().tolist() for b in resumed]
    assert seen + rest == expected
    assert resumed.state_dict() == {"epoch": 2, "batches_done": len(expected)}
    resumed.sampler.set_epoch(3)  # the next epoch starts from its first batch again
    assert len(list(resumed)) == len(expected)


def test_loader_state_at_an_epoch_end_starts_the_next_epoch():
    make = _loaders()["shuffled"]
    loader = make()
    loader.sampler.set_epoch(1)
    n = len(list(loader))
    resumed = make()
    resumed.load_state_dict(loader.state_dict())
    after = make()
    after.sampler.set_epoch(2)
    assert [b["inputs"].tolist() for b in resumed] == [b["inputs"].tolist() for b in after] and n > 0
