"""A checkpoint written before a component moved still builds: its stored names are read as the new ones."""

from __future__ import annotations

from peftlab.checkpoints.safe_build import MOVED_TARGETS, allowed_targets, buildable_config


def test_every_moved_name_maps_to_a_component_of_todays_configs():
    assert set(MOVED_TARGETS.values()) <= allowed_targets()


def test_a_pre_move_config_is_read_with_todays_names():
    stored = {
        "strategy": {"pruning": {"_target_": "peftlab.pruning.PruningCallback", "final_sparsity": 0.5}},
        "callbacks": {"step_checkpoint": {"_target_": "peftlab.utils.step_checkpoint.StepCheckpoint"}},
        "logger": {"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "x"}},
        "data": {"sources": {"topic": {"_target_": "peftlab.data.TextFileSource", "train": "topic.csv", "text": "t"}}},
    }
    cfg = buildable_config(stored, "old.ckpt", "ckpt_path")
    assert cfg.strategy.pruning._target_ == "peftlab.callbacks.pruning.PruningCallback"
    assert cfg.strategy.pruning.final_sparsity == 0.5
    assert cfg.callbacks.step_checkpoint._target_ == "peftlab.callbacks.step_checkpoint.StepCheckpoint"
    assert cfg.logger.csv._target_ == "peftlab.reporting.resumed_logs.ResumableCSVLogger"
    assert dict(cfg.data.sources.topic) == {"path": "topic.csv", "text": "t"}
