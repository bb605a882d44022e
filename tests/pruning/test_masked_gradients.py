"""Pruned entries are out of the optimisation: their gradients are zero on every path, so the
gradient norm (logged, clipped), the α of gradient-based weighting and the optimizer's moments are
exactly those of a model whose pruned entries are physically frozen at zero.

The reference is torch.nn.utils.prune's reparametrisation (``weight = weight_orig * mask``, the
gradient of a pruned entry is zero through the product) with masks from ``l1_unstructured``, which
are the per-layer magnitude masks peftlab computes (one-shot at step 0 from the same weights).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.nn.utils import prune

from peftlab.builders import build_datamodule, build_model, build_strategy_callbacks
from peftlab.pruning.masks import get_mask
from pruning_helpers import one_thread  # noqa: F401

STEPS = 4
# weights are compared to 1 % of one Adam step (lr 0.002): float rounding in the Gram/solver
# paths is amplified by Adam's normalisation; an unmasked gradient moves an entry by ~lr
SPARSITY = 0.6
COMMON = ["model.backbone.dropout=0.0", "strategy=prune_share", f"strategy.pruning.final_sparsity={SPARSITY}"]
ONE_SHOT = ["strategy.pruning.schedule=one_shot", "strategy.pruning.start_step=0"]


class RecordingLogger(Logger):
    """Keeps every logged metric in memory (a real Lightning logger, nothing written)."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def series(self, key: str) -> list[float]:
        return [m[key] for _, m in self.rows if key in m]


class AlphaEachStep(L.Callback):
    """α of the weighting method after every optimizer step."""

    def __init__(self):
        self.alphas: list[list[float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.alphas.append(list(pl_module.weighting.alpha().values()))


class TorchPruneReference(L.Callback):
    """Before the optimizer exists: torch's l1_unstructured on every Linear of the backbone, and
    the pruned entries of ``weight_orig`` set to zero (so AGC's weight norms see the pruned model)."""

    def setup(self, trainer, pl_module, stage):
        for module in pl_module.body.modules():
            if isinstance(module, nn.Linear):
                prune.l1_unstructured(module, "weight", amount=SPARSITY)
                with torch.no_grad():
                    module.weight_orig.mul_(module.weight_mask)


def fit(cfg, extra_callbacks: list[L.Callback]):
    """A few optimizer steps through Lightning's Trainer; returns (model, trainer, logger, alphas)."""
    L.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    logger, alphas = RecordingLogger(), AlphaEachStep()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=STEPS,
        limit_val_batches=0,
        log_every_n_steps=1,
        logger=logger,
        callbacks=build_strategy_callbacks(cfg) + extra_callbacks + [alphas],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=datamodule)
    return model, trainer, logger, alphas.alphas


def effective_linear_weights(model) -> list[torch.Tensor]:
    """Each backbone Linear's weight parameter (torch's ``weight_orig``: its pruned entries get no
    gradient, so they stay zero if the masks work)."""
    return [getattr(m, "weight_orig", m.weight).detach().clone() for m in model.body.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    "strategy",
    [
        ["strategy/weighting=equal", "strategy/clipping=norm"],  # automatic path, clipped by norm
        ["strategy/weighting=equal", "strategy/clipping=agc"],  # automatic path, AGC
        ["strategy/weighting=pcgrad", "strategy/clipping=norm"],  # per-task gradients, α from the Gram matrix
        ["strategy/weighting=mgda", "strategy.weighting.mode=params", "strategy/clipping=none"],
        ["strategy/weighting=mgda", "strategy.weighting.mode=representation", "strategy/clipping=none"],
        ["strategy/weighting=equal", "strategy/clipping=per_task", "strategy.clipping.max_norm=0.5"],
    ],
    ids=["equal-norm", "equal-agc", "pcgrad", "mgda-params", "mgda-representation", "per-task-clipping"],
)
def test_grad_norm_and_alpha_equal_those_of_the_physically_pruned_model(make_cfg, strategy):
    masked, _, masked_log, masked_alpha = fit(make_cfg(*COMMON, *ONE_SHOT, *strategy), [])
    ref, _, ref_log, ref_alpha = fit(make_cfg(*COMMON, "strategy/pruning=none", *strategy), [TorchPruneReference()])

    # same masks as torch's l1_unstructured: the comparison is between equal sparsity patterns
    ref_masks = [m.weight_mask for m in ref.body.modules() if isinstance(m, nn.Linear)]
    our_masks = [get_mask(m, "weight") for m in masked.body.modules() if isinstance(m, nn.Linear)]
    assert len(our_masks) == len(ref_masks) >= 2
    assert all(torch.equal(a, b) for a, b in zip(our_masks, ref_masks))
    assert 1 - sum(int(m.sum()) for m in our_masks) / sum(m.numel() for m in our_masks) == pytest.approx(SPARSITY, abs=1e-3)

    norms, ref_norms = masked_log.series("train/grad_norm"), ref_log.series("train/grad_norm")
    assert len(norms) == len(ref_norms) == STEPS
    assert norms == pytest.approx(ref_norms, rel=1e-5)
    assert len(masked_alpha) == STEPS
    for ours, theirs in zip(masked_alpha, ref_alpha):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    for ours, theirs in zip(effective_linear_weights(masked), effective_linear_weights(ref)):
        assert torch.allclose(ours, theirs, atol=2e-5, rtol=0), f"weights differ by {(ours - theirs).abs().max():.2e}"


@pytest.mark.parametrize("weighting", ["equal", "pcgrad"])
def test_adam_moments_of_pruned_entries_stay_exactly_zero(make_cfg, weighting):
    """Masks change during the run (cubic: steps 0, 2, 4 of 6): moments built up before an entry
    was pruned are cleared, and none build up after."""
    schedule = ["strategy.pruning.schedule=cubic", "strategy.pruning.start_step=0", "strategy.pruning.end_step=3", "strategy.pruning.every_n_steps=1"]
    model, trainer, _, _ = fit(make_cfg(*COMMON, *schedule, f"strategy/weighting={weighting}"), [])
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    linears = [m for m in model.body.modules() if isinstance(m, nn.Linear)]
    for layer in linears:
        mask, state = get_mask(layer, "weight"), optimizer.state[layer.weight]
        pruned = mask == 0
        assert 0.5 < float(pruned.float().mean()) < 0.7
        assert torch.count_nonzero(layer.weight[pruned]) == 0
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.count_nonzero(state[key][pruned]) == 0, key
            assert torch.count_nonzero(state[key][~pruned]) > 0.5 * int((~pruned).sum()), key  # kept entries do move (dead ReLU rows do not)


def test_gradients_through_autograd_grad_are_masked(make_cfg):
    """The per-task path computes gradients with torch.autograd.grad, not backward: masked too."""
    model, _, _, _ = fit(make_cfg(*COMMON, *ONE_SHOT, "strategy/weighting=pcgrad"), [])
    layer = next(m for m in model.body.modules() if isinstance(m, nn.Linear))
    x = torch.randn(5, layer.in_features)
    (grad,) = torch.autograd.grad(layer(x).pow(2).sum(), [layer.weight])
    mask = get_mask(layer, "weight")
    assert torch.count_nonzero(grad[mask == 0]) == 0
    assert torch.count_nonzero(grad[mask == 1]) == int(mask.sum())
