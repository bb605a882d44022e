"""A quick check that the default config trains in-process (the helper other tests build on)."""

from peftlab.train import train


def test_default_config_trains_and_reports(make_cfg):
    cfg = make_cfg("trainer.max_epochs=1")
    metrics = train(cfg)
    assert metrics["status"] == "completed"
    assert set(metrics["tasks"]) == {"digit", "parity", "high"}
