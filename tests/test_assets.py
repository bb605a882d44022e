"""Packaged assets: the MiniLM weights and the tweets corpus are unpacked once and load offline."""

from __future__ import annotations

import json

import pytest

from peftlab.data.tokenize import load_tokenizer
from peftlab.packaged_assets import packaged_data_path, pretrained_path


def test_minilm_is_unpacked_once_and_its_tokenizer_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE_DIR", str(tmp_path))
    path = pretrained_path("minilm")
    config = json.loads((tmp_path / "minilm" / "config.json").read_text())
    assert path == str(tmp_path / "minilm")
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("bert", 6, 384)
    stamp = (tmp_path / "minilm" / "model.safetensors").stat().st_mtime_ns
    assert pretrained_path("minilm") == path
    assert (tmp_path / "minilm" / "model.safetensors").stat().st_mtime_ns == stamp, "not unpacked again"
    tok = load_tokenizer("minilm")
    assert tok("self-driving cars")["input_ids"][0] == tok.cls_token_id
    assert pretrained_path("bert-base-uncased") == "bert-base-uncased"  # hub ids and paths pass through


def test_tweets_csv_is_copied_once(tmp_path):
    first = packaged_data_path("tweets", str(tmp_path))
    stamp = first.stat().st_mtime_ns
    assert packaged_data_path("tweets", str(tmp_path)) == first and first.stat().st_mtime_ns == stamp
    assert first.read_bytes().startswith(b"sentiment,confidence,text\r\n")


def test_a_missing_tokenizer_is_one_line(tmp_path):
    from peftlab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_tokenizer(str(tmp_path / "absent"))
    assert err.value.key == "data.tokenizer" and "\n" not in str(err.value)
