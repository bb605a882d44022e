"""Bad-input catalogue: config values, unknown keys and groups, data files, checkpoints, CLI misuse
and run directories already in use.

Each case runs the real command and must exit with status 2, print exactly one ``error: <key or
file>: ...`` line (the last line of stderr) naming what is wrong, print no traceback, and leave a
previously finished run directory byte-for-byte unchanged (hashed before and after).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT

TINY = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
LOCAL = ["data=local_file", "data.source.features=[f0,f1]", "data.input_shape=[2]"]


def _run(script: str, args: list[str], cwd_log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, str(ROOT / script), *args]
    cmd.append(f"paths.log_dir={cwd_log}")  # keep the logs of each case in its temp dir
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed tiny run (its dir is hashed before and after every bad case)."""
    log = tmp_path_factory.mktemp("finished")
    run_dir = log / "run"
    proc = _run("train.py", [*TINY, f"hydra.run.dir={run_dir}"], log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


def _csv(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD_ROWS = "f0,f1,y_a,y_b\n" + "".join(f"{i % 7},{i % 5},{i % 2},{i * 0.1}\n" for i in range(40))

# (id, script, args (with {tmp}, {run} placeholders), what the error line must name, files to write {name: content})
CASES = [
    ("batch_size_zero", "train.py", ["data.batch_size=0"], "data.batch_size", {}),
    ("batch_size_text", "train.py", ["data.batch_size=abc"], "data.batch_size", {}),
    ("num_workers_negative", "train.py", ["data.num_workers=-1"], "data.num_workers", {}),
    ("data_mode", "train.py", ["data.mode=both"], "data.mode", {}),
    ("dwa_temperature_zero", "train.py", ["strategy/weighting=dwa", "strategy.weighting.temperature=0"], "strategy.weighting.temperature", {}),
    ("dwa_warmup_one", "train.py", ["strategy/weighting=dwa", "strategy.weighting.warmup_epochs=1"], "strategy.weighting.warmup_epochs", {}),
    ("clip_norm_negative", "train.py", ["strategy.clipping.max_norm=-1"], "strategy.clipping.max_norm", {}),
    ("final_sparsity_above_one", "train.py", ["strategy=prune_share", "strategy.pruning.final_sparsity=1.5"], "strategy.pruning.final_sparsity", {}),
    ("pruning_end_before_start", "train.py", ["strategy=prune_share", "strategy.pruning.start_step=0.8", "strategy.pruning.end_step=0.2"], "strategy.pruning", {}),
    ("gradient_mode", "train.py", ["strategy/weighting=pcgrad", "strategy.weighting.mode=layers"], "strategy.weighting.mode", {}),
    ("unknown_top_key", "train.py", ["learning_rate=0.1"], "learning_rate", {}),
    ("unknown_nested_key", "train.py", ["data.batchsize=8"], "data.batchsize", {}),
    ("unknown_weighting_option", "train.py", ["strategy/weighting=gradnorm_plus"], "strategy/weighting", {}),
    ("unknown_data_option", "train.py", ["data=imagenet"], "data", {}),
    ("unknown_model_option", "train.py", ["model=gpt9"], "model", {}),
    ("max_epochs_text", "train.py", ["trainer.max_epochs=many"], "trainer.max_epochs", {}),
    ("hidden_dims_zero", "train.py", ["model.backbone.hidden_dims=[0]"], "model.backbone.hidden_dims", {}),
    ("missing_data_file", "train.py", [*LOCAL, "data.source.path={tmp}/absent.csv"], "absent.csv", {}),
    ("empty_data_file", "train.py", [*LOCAL, "data.source.path={tmp}/empty.csv"], "empty.csv", {"empty.csv": ""}),
    ("wrong_columns", "train.py", [*LOCAL, "data.source.path={tmp}/cols.csv"], "cols.csv", {"cols.csv": "a,b,c\n1,2,3\n"}),
    ("nan_labels", "train.py", [*LOCAL, "data.source.path={tmp}/nan.csv"], "nan.csv", {"nan.csv": GOOD_ROWS + "1,2,,0.5\n"}),
    ("label_out_of_range", "train.py", [*LOCAL, "data.source.path={tmp}/range.csv"], "data.tasks[0].num_classes", {"range.csv": GOOD_ROWS + "1,2,7,0.5\n"}),
    ("non_utf8_file", "train.py", [*LOCAL, "data.source.path={tmp}/latin.csv"], "latin.csv", {"latin.csv": GOOD_ROWS.encode() + b"1,2,\xe9\xff,0.5\n"}),
    ("wrong_extension", "train.py", [*LOCAL, "data.source.path={tmp}/data.xlsx"], "data.source.path", {"data.xlsx": GOOD_ROWS}),
    ("missing_checkpoint_resume", "train.py", ["ckpt_path={tmp}/none.ckpt"], "ckpt_path", {}),
    ("truncated_checkpoint_resume", "train.py", ["ckpt_path={tmp}/cut.ckpt"], "ckpt_path", {"cut.ckpt": "TRUNCATE"}),
    ("foreign_checkpoint_resume", "train.py", ["model.backbone.hidden_dims=[32]", "ckpt_path={run}/checkpoints/last.ckpt"], "ckpt_path", {}),
    ("missing_checkpoint_eval", "eval.py", ["ckpt_path={tmp}/none.ckpt"], "ckpt_path", {}),
    ("truncated_checkpoint_eval", "eval.py", ["ckpt_path={tmp}/cut.ckpt"], "ckpt_path", {"cut.ckpt": "TRUNCATE"}),
    ("not_a_checkpoint_eval", "eval.py", ["ckpt_path={tmp}/text.ckpt"], "ckpt_path", {"text.ckpt": "hello\n"}),
    ("eval_without_checkpoint", "eval.py", [], "ckpt_path", {}),
    ("cli_override_without_value", "train.py", ["data.batch_size"], "data.batch_size", {}),
    ("cli_unknown_flag", "train.py", ["--epochs", "3"], "--epochs", {}),
    ("checkpoint_holding_a_list_eval", "eval.py", ["ckpt_path={tmp}/list.ckpt"], "ckpt_path", {"list.ckpt": "LIST"}),
    ("gradient_clip_val_set", "train.py", ["trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val", {}),
    ("weighting_option_typo", "train.py", ["strategy/weighting=nope"], "strategy/weighting", {}),
    ("accumulate_fraction", "train.py", ["trainer.accumulate_grad_batches=0.5"], "trainer.accumulate_grad_batches", {}),
    ("ddp_spawn", "train.py", ["+trainer.strategy=ddp_spawn"], "trainer.strategy", {}),
    ("finished_dir_other_config", "train.py", ["hydra.run.dir={run}", "trainer.max_epochs=2"], "hydra.run.dir", {}),
    ("finished_dir_start_over", "train.py", ["hydra.run.dir={run}", "resume=false"], "resume", {}),
]


CASES = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path):
    _, script, args, named, files = case
    for name, content in files.items():
        if content == "TRUNCATE":  # the first half of a real checkpoint
            data = (finished_run / "checkpoints" / "last.ckpt").read_bytes()
            (tmp_path / name).write_bytes(data[: len(data) // 2])
        elif content == "LIST":  # a valid torch file that is not a checkpoint
            torch.save([1, 2, 3], tmp_path / name)
        else:
            _csv(tmp_path / name, content)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(finished_run)) for a in args]
    before = _hashes(finished_run)
    extra = TINY if script == "train.py" else []
    proc = _run(script, [*extra, *args], tmp_path / "logs")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line.lower()]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert errors[0].startswith("error: ") and named in errors[0], errors[0]
    assert _hashes(finished_run) == before
    assert not [p for p in (tmp_path / "logs").rglob("*.ckpt")]  # and no checkpoint was written
