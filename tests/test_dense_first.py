"""The dense run the pruning recipes train first: its config drops the recipe's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from peftlab.dense_first import dense_config


def test_the_dense_run_of_prune_recover_trains_at_full_fine_tunings_rate_not_the_adapters(make_cfg, tmp_path):
    """prune_recover's adapter_lr (2e-3) set the dense full fine-tune of a pretrained decoder 100x too high (review)."""
    cfg = make_cfg("model=hf_causal_lm", "data=synthetic_generation", "strategy=prune_recover")
    assert float(cfg.model.optimizer.lr) == pytest.approx(2e-3)  # the recovery: the adapter rate
    dense = dense_config(cfg, Path(tmp_path / "dense"), sharing=OmegaConf.to_container(cfg.strategy.dense_sharing))
    assert float(dense.model.optimizer.lr) == pytest.approx(2e-5)  # model=hf's full fine-tuning rate
    assert "adapter_lr" not in dense.strategy and "pruning" in dense.strategy and not dense.strategy.pruning.enabled
