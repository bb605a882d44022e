"""LoRA targets for architectures peft has no default for (DistilBERT): the attention projections by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_helpers import HIDDEN, INTERMEDIATE, LAYERS, VOCAB, hf_module, task_losses, text_batches
from peftlab.errors import ConfigError
from peftlab.sharing import PeftAdapter
from peftlab.sharing.lora_targets import default_lora_targets, linear_layer_names
from peftlab.sharing.task_lora import TaskLoRA


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory):
    """A 2-layer DistilBERT (hidden 32) saved with save_pretrained; peft 0.21 has no LoRA default for it."""
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=2, hidden_dim=INTERMEDIATE, max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)
    path = tmp_path_factory.mktemp("distilbert")
    DistilBertModel(config).save_pretrained(path)
    return path


def lora_layers(model: nn.Module) -> set[str]:
    from peft.tuners.lora import LoraLayer

    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, LoraLayer)}


SHARINGS = [lambda: PeftAdapter({"peft_type": "LORA", "r": 4, "lora_alpha": 8}), lambda: TaskLoRA(r=4, lora_alpha=8)]


@pytest.mark.parametrize("sharing", SHARINGS, ids=["lora_share", "task_lora"])
def test_lora_with_null_targets_goes_into_distilberts_attention_projections(tiny_distilbert, sharing):
    module = hf_module(tiny_distilbert, sharing())  # was: peft's "Please specify `target_modules`"
    assert lora_layers(module) == {"q_lin", "v_lin"}
    assert all("lora_" in n for n, p in module.body.named_parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("sharing", SHARINGS, ids=["lora_share", "task_lora"])
def test_lora_on_distilbert_trains(tiny_distilbert, sharing):
    module = hf_module(tiny_distilbert, sharing())
    batches = text_batches(n=4)
    before = task_losses(module, batches)
    optimizer = module.configure_optimizers()
    for batch in batches * 3:
        optimizer.zero_grad()
        sum(module.task_losses(module(batch["inputs"], batch["task_mask"]), batch).values()).backward()
        optimizer.step()
    after = task_losses(module, batches)
    assert sum(after.values()) < sum(before.values())


def test_bert_and_gpt2_keep_peft_defaults_and_unknown_names_fall_back_to_every_linear_layer(tiny_distilbert):
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=INTERMEDIATE))
    assert default_lora_targets(bert) is None  # peft's table: query, value

    class Odd(nn.Module):  # a Hugging Face-style model (it has a config) with no attention names peft or the rule knows
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"model_type": "odd"})()
            self.mix = nn.Linear(4, 4)
            self.out = nn.Linear(4, 4)

    assert default_lora_targets(Odd()) == ["mix", "out"]


def test_targets_that_match_nothing_list_the_backbones_linear_layers(tiny_distilbert):
    with pytest.raises(ConfigError) as err:
        hf_module(tiny_distilbert, PeftAdapter({"peft_type": "LORA", "r": 4, "target_modules": ["query", "value"]}))
    assert "q_lin" in str(err.value) and "ffn" not in str(err.value) and "lin1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        hf_module(tiny_distilbert, TaskLoRA(r=4, target_modules=["query", "value"]))
    assert "q_lin" in str(err.value), str(err.value)


def test_linear_layer_names_of_distilbert(tiny_distilbert):
    from transformers import DistilBertModel

    names = linear_layer_names(DistilBertModel.from_pretrained(tiny_distilbert))
    assert {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"} <= set(names)
