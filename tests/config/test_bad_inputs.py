"""Bad-input catalogue: config values, unknown keys and groups, data files, checkpoints, CLI misuse
and run directories already in use.

Each case runs the real command and must exit with status 2, print exactly one ``error: <key or
file>: ...`` line (the last line of stderr) naming what is wrong, print no traceback, and leave a
previously finished run directory byte-for-byte unchanged (hashed before and after).
"""

from __future__ import annotations

import pytest

from bad_input_harness import LOCAL, check_bad_input

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
    ("n_m_n_not_below_m", "train.py", ["strategy=prune_share", "strategy/pruning=wanda", "strategy.pruning.criterion.n_m=[4,4]"], "strategy.pruning.criterion.n_m", {}),
    (
        "n_m_m_not_dividing_width",
        "train.py",
        ["strategy=prune_share", "strategy/pruning=wanda", "strategy.pruning.criterion.n_m=[3,5]", "strategy.pruning.final_sparsity=0.4"],
        "strategy.pruning.criterion.n_m",
        {},
    ),
    ("n_m_structured_criterion", "train.py", ["strategy=prune_share", "strategy/pruning=neurons", "strategy.pruning.criterion.n_m=[2,4]"], "strategy.pruning.criterion.n_m", {}),
    ("calibration_batches_zero", "train.py", ["strategy=oneshot_prune", "strategy.pruning.calibration.batches=0"], "strategy.pruning.calibration.batches", {}),
    ("calibration_seed_negative", "train.py", ["strategy=oneshot_prune", "strategy.pruning.calibration.seed=-1"], "strategy.pruning.calibration.seed", {}),
    (
        "sparsegpt_on_a_bias",
        "train.py",
        ["strategy=oneshot_prune", "strategy/pruning=sparsegpt", "strategy.pruning.parameters=[weight,bias]", "strategy.from_ckpt={run}/checkpoints/last.ckpt"],
        "strategy.pruning.parameters",
        {},
    ),
    ("oneshot_missing_checkpoint", "train.py", ["strategy=oneshot_prune", "strategy.from_ckpt={tmp}/none.ckpt"], "strategy.from_ckpt", {}),
    ("recover_missing_checkpoint", "train.py", ["strategy=prune_recover", "strategy.from_ckpt={tmp}/none.ckpt"], "strategy.from_ckpt", {}),
    ("recover_not_one_shot", "train.py", ["strategy=prune_recover", "strategy.pruning.schedule=cubic"], "strategy.pruning.schedule", {}),
    ("recover_from_another_model", "train.py", ["strategy=prune_recover", "model.backbone.hidden_dims=[32]", "strategy.from_ckpt={run}/checkpoints/last.ckpt"], "strategy.from_ckpt", {}),
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
    ("finished_dir_other_config", "train.py", ["hydra.run.dir={run}", "trainer.max_epochs=2"], "hydra.run.dir", {}),
    ("finished_dir_start_over", "train.py", ["hydra.run.dir={run}", "resume=false"], "resume", {}),
]


CASES = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line_and_changes_nothing(case, finished_run, tmp_path):
    check_bad_input(case, finished_run, tmp_path)
