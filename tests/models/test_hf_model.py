"""model=hf: any AutoModel loaded from a folder written by save_pretrained; pooling; clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import run_cli
from hf_helpers import save_tiny_bert, save_tiny_gpt2
from peftlab.errors import ConfigError
from peftlab.models import HFBackbone


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def rows_with_padding(side: str, pad_id: int = 0):
    """Two sequences (lengths 5 and 3) padded to 5 on ``side``, and each one unpadded."""
    seqs = [torch.tensor([7, 8, 9, 10, 11]), torch.tensor([21, 22, 23])]
    ids = torch.full((2, 5), pad_id)
    mask = torch.zeros(2, 5, dtype=torch.long)
    for i, s in enumerate(seqs):
        where = slice(0, len(s)) if side == "right" else slice(5 - len(s), 5)
        ids[i, where], mask[i, where] = s, 1
    return ids, mask, seqs


@torch.no_grad()
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_encoder_pooling_ignores_right_padding(bert_dir, pooling):
    """cls / mean of a padded row equal those of the same sequence alone."""
    backbone = HFBackbone(str(bert_dir), pooling=pooling).eval()
    ids, mask, seqs = rows_with_padding("right")
    pooled = backbone(input_ids=ids, attention_mask=mask)
    assert pooled.shape == (2, 32)
    for i, s in enumerate(seqs):
        alone = backbone(input_ids=s[None], attention_mask=torch.ones(1, len(s), dtype=torch.long))
        torch.testing.assert_close(pooled[i], alone[0], atol=1e-5, rtol=1e-5)
    if pooling == "mean":  # and mean is not cls: the tokens after the first count
        assert not torch.allclose(pooled, HFBackbone(str(bert_dir), pooling="cls").eval()(input_ids=ids, attention_mask=mask))


@torch.no_grad()
@pytest.mark.parametrize("side", ["right", "left"])
def test_last_pooling_takes_the_last_real_token(gpt2_dir, side):
    """``last`` picks the hidden state of each row's last non-padding token, with right and with left padding."""
    backbone = HFBackbone(str(gpt2_dir), pooling="last").eval()
    ids, mask, seqs = rows_with_padding(side)
    pooled = backbone(input_ids=ids, attention_mask=mask)
    hidden = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
    last = [4, 2] if side == "right" else [4, 4]
    torch.testing.assert_close(pooled, torch.stack([hidden[0, last[0]], hidden[1, last[1]]]))
    if side == "right":  # a causal decoder's last real token does not see the padding after it
        alone = backbone(input_ids=seqs[1][None], attention_mask=torch.ones(1, 3, dtype=torch.long))
        torch.testing.assert_close(pooled[1], alone[0], atol=1e-5, rtol=1e-5)


def test_a_missing_local_path_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        HFBackbone(str(tmp_path / "no-such-model"))
    assert info.value.key == "model.name_or_path" and f"no such directory: {(tmp_path / 'no-such-model').resolve()}" in str(info.value)


def test_a_model_needing_remote_code_is_refused_unless_trusted(bert_dir, tmp_path):
    """A config whose auto_map points to code in the folder needs model.trust_remote_code=true."""
    custom = tmp_path / "custom"
    shutil.copytree(bert_dir, custom)
    config = json.loads((custom / "config.json").read_text())
    config.update(model_type="tinyx", auto_map={"AutoConfig": "configuration_tinyx.TinyXConfig", "AutoModel": "modeling_tinyx.TinyXModel"})
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "configuration_tinyx.py").write_text("from transformers import BertConfig\n\nclass TinyXConfig(BertConfig):\n    model_type = 'tinyx'\n")
    with pytest.raises(ConfigError) as info:
        HFBackbone(str(custom))
    assert info.value.key == "model.trust_remote_code"


def test_bad_pooling_and_dtype_name_their_keys(bert_dir):
    with pytest.raises(ConfigError, match="model.pooling"):
        HFBackbone(str(bert_dir), pooling="max")
    with pytest.raises(ConfigError, match="model.dtype"):
        HFBackbone(str(bert_dir), dtype="int8")


def test_bfloat16_backbone_with_float32_features(bert_dir):
    backbone = HFBackbone(str(bert_dir), dtype="bfloat16", gradient_checkpointing=True)
    assert backbone.training and backbone.model.training  # from_pretrained's eval mode is undone: dropout trains
    assert next(backbone.model.parameters()).dtype == torch.bfloat16
    ids, mask, _ = rows_with_padding("right")
    assert backbone(input_ids=ids, attention_mask=mask).dtype == torch.float32


@pytest.mark.slow
def test_train_py_with_a_missing_model_dir_exits_2_with_one_line(tmp_path):
    result = run_cli("train.py", "model=hf", f"model.name_or_path={tmp_path}/nope", "callbacks=none", log_dir=tmp_path / "logs", timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: model.name_or_path: no such directory: {tmp_path.resolve()}/nope"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
