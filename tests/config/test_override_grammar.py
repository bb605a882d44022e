"""Every form of Hydra's override grammar reaches Hydra untouched; the pre-checks only add clearer errors.

The pre-checks (unknown group options, mistyped keys) run before Hydra with no config loader;
they once expanded ``glob(*)`` themselves and crashed. Each form is checked twice: the pre-checks
pass it through, and the real command line accepts it (sweeps are launched with a one-batch
budget; plain forms print the composed config with ``--cfg job``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from peftlab.cli import CONFIG_DIR
from peftlab.config.group_options import group_options, unknown_group_option
from peftlab.config.override_keys import unknown_override_key

ONE_BATCH = ["debug=fast_dev_run", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
FEW_BATCHES = ["debug=limit_batches", "trainer.max_epochs=1", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]

SWEEP_FORMS = {
    "glob": (["strategy=glob(*)"], len(group_options(Path(CONFIG_DIR), "strategy"))),  # every recipe
    "range": (["seed=range(1,3)"], 2),
    "choice": (["strategy/weighting=choice(equal,uncertainty)"], 2),
    "tag": (["strategy=tag(recipes,choice(share,separate))"], 2),
    # Optuna needs a value from every trial: the best checkpoint's val/score, so no fast_dev_run here
    "interval": (["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "model.optimizer.lr=interval(0.001,0.01)"], 2),
    "glob-experiment": (["experiment=glob(*)"], len(group_options(Path(CONFIG_DIR), "experiment"))),
}
PLAIN_FORMS = {
    "delete": ("~callbacks", lambda cfg: "callbacks" not in cfg),
    "add": ("+trainer.val_check_interval=0.5", lambda cfg: cfg["trainer"]["val_check_interval"] == 0.5),
    "force-add": ("++trainer.max_epochs=3", lambda cfg: cfg["trainer"]["max_epochs"] == 3),
    "add-new-by-force": ("++trainer.val_check_interval=0.25", lambda cfg: cfg["trainer"]["val_check_interval"] == 0.25),
}


def run(*args: str, cwd=None, root=None) -> subprocess.CompletedProcess:
    """``python train.py <args>`` with outputs under ``root`` (via PEFTLAB_ROOT, as a user may set)."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    if root is not None:
        env["PEFTLAB_ROOT"] = str(root)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=600)


ALL_FORMS = (
    [o for overrides, _ in SWEEP_FORMS.values() for o in overrides]
    + [o for o, _ in PLAIN_FORMS.values()]
    + [
        "strategy=shuffle(share,separate)",
        "seed=range(0,10,step=5)",
        "'strategy.weighting.alpha=[1,1,1]','[1,2,3]'",
    ]
)


@pytest.mark.parametrize("override", ALL_FORMS)
def test_prechecks_pass_every_grammar_form_through(override):
    assert unknown_group_option(CONFIG_DIR, [override]) is None
    assert unknown_override_key(CONFIG_DIR, "train", [override]) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["strategy=nope"], "strategy: unknown option 'nope'; allowed: lora_share, oneshot_prune, prune_recover, prune_share, separate, share, task_lora"),
        (["-m", "strategy=share,nope"], "strategy: unknown option 'nope'"),
        (["-m", "strategy/weighting=choice(equal,nope)"], "strategy/weighting: unknown option 'nope'"),
        (["+strategy/weighting=nope"], "strategy/weighting: unknown option 'nope'"),
    ],
)
def test_precheck_still_names_unknown_options(args, message):
    assert unknown_group_option(CONFIG_DIR, args).startswith(message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["trainer.max_epoch=2"], "trainer.max_epoch: not a config key; did you mean trainer.max_epochs?"),
        (["trainr.max_epochs=2"], "trainr.max_epochs: not a config key; did you mean trainer.max_epochs?"),
        (["strategy=prune_share", "strategy.pruning.final_sparsty=0.3"], "did you mean strategy.pruning.final_sparsity?"),
        (["-m", "strategy.weighting.alfa=[1,1,1],[1,2,3]"], "did you mean strategy.weighting.alpha?"),
    ],
)
def test_mistyped_key_gets_the_closest_valid_key(args, message):
    assert message in unknown_override_key(CONFIG_DIR, "train", args)


@pytest.mark.parametrize(
    "args",
    [
        ["trainer.accumulate_grad_batches=2"],  # in the trainer config: no leading + needed
        ["++trainer.limit_train_batches=3", "+trainer.max_steps=5"],
        ["ckpt_path=x.ckpt"],  # a ??? value in eval.yaml counts as present
        ["strategy=prune_share", "strategy.pruning.final_sparsity=0.3,0.5"],
        ["-m", "strategy=share,prune_share", "strategy.pruning.final_sparsity=0.3"],  # group sweeps: left to Hydra
    ],
)
def test_valid_keys_are_not_flagged(args):
    config = "eval" if args == ["ckpt_path=x.ckpt"] else "train"
    assert unknown_override_key(CONFIG_DIR, config, args) is None


@pytest.mark.slow
def test_mistyped_key_on_the_command_line_is_one_line_exit_2(tmp_path):
    result = run("trainer.max_epoch=2", root=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: trainer.max_epoch: not a config key; did you mean trainer.max_epochs?"
    assert not (tmp_path / "logs").exists()  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(PLAIN_FORMS))
def test_plain_form_reaches_hydra(form, tmp_path):
    override, check = PLAIN_FORMS[form]
    result = run(override, "--cfg", "job", root=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert check(yaml.safe_load(result.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(SWEEP_FORMS))
def test_sweep_form_reaches_hydra_and_runs_every_job(form, tmp_path):
    overrides, jobs = SWEEP_FORMS[form]
    result = run("-m", *overrides, *(FEW_BATCHES if form == "interval" else ONE_BATCH), root=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (sweep,) = [p for p in (tmp_path / "logs").glob("*/multiruns/*") if p.is_dir()]
    statuses = [yaml.safe_load((d / "metrics.json").read_text())["status"] for d in sorted(sweep.glob("[0-9]*"))]
    assert statuses == ["completed"] * jobs
    assert (sweep / "summary.md").exists()
