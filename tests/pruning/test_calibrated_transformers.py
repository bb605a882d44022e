"""Wanda and SparseGPT on a Hugging Face encoder (a tiny random BERT saved with save_pretrained)."""

import pytest
import torch

from hf_helpers import hf_module, save_tiny_bert, text_batches
from peftlab.callbacks.calibration_batches import EvalMode
from peftlab.callbacks.pruning import PruningCallback
from peftlab.errors import ConfigError
from peftlab.pruning.criteria import SparseGPT, Wanda
from peftlab.pruning.masks import get_mask
from peftlab.sharing import FullSharing
from pruning_helpers import one_thread  # noqa: F401


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def prune(module, criterion, **kwargs):
    cb = PruningCallback(criterion=criterion, scope="body", schedule="one_shot", final_sparsity=0.5, **kwargs)
    cb.attach(module)
    cb.calibrate(text_batches(n=3), module)  # a list of batches stands in for the training loader
    with EvalMode(module):
        cb.update_masks(0.5)
    return cb


@pytest.mark.parametrize("criterion", [Wanda(n_m=[2, 4]), SparseGPT(n_m=[2, 4], blocksize=16)], ids=["wanda", "sparsegpt"])
def test_every_encoder_linear_is_2_of_4(bert_dir, criterion):
    module = hf_module(bert_dir, FullSharing())
    cb = prune(module, criterion)
    assert len(cb.targets) == 2 * 6 + 1  # q, k, v, attention output, intermediate, output per layer; the pooler
    for t in cb.targets:
        kept = get_mask(t.module, "weight").reshape(-1, 4).sum(1)
        assert (kept == 2).all(), t.name
        assert ((t.tensor != 0).reshape(-1, 4).sum(1) <= 2).all()
    module.eval()
    out = module(text_batches(n=1)[0]["inputs"])
    assert all(torch.isfinite(v).all() for v in out.values())


def test_sparsegpt_beats_magnitude_on_the_encoders_outputs(bert_dir):
    from peftlab.pruning.criteria import Magnitude

    batch = text_batches(n=1, seed=5)[0]["inputs"]

    def features(module):
        with torch.no_grad():
            return torch.cat([v.flatten() for v in module.eval().body(**batch).values()])

    ref = features(hf_module(bert_dir, FullSharing()))
    errors = {}
    for name, criterion in [("sparsegpt", SparseGPT(blocksize=16)), ("magnitude", Magnitude())]:
        module = hf_module(bert_dir, FullSharing())
        prune(module, criterion)
        errors[name] = float(torch.linalg.norm(features(module) - ref))
    assert errors["sparsegpt"] < errors["magnitude"]


def test_a_layer_type_sparsegpt_cannot_reconstruct_is_one_line(bert_dir):
    module = hf_module(bert_dir, FullSharing())
    with pytest.raises(ConfigError) as err:
        PruningCallback(criterion=SparseGPT(), scope="body", module_types=["Linear", "Embedding"], final_sparsity=0.5).attach(module)
    assert err.value.key == "strategy.pruning.module_types" and "Embedding" in str(err.value)
