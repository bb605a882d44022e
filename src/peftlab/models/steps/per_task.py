"""The per-task-gradient step: gradient-based weighting (PCGrad, CAGrad, MGDA, …) and per-task clipping.

Manual optimisation, because each task's gradient is needed separately before they are
combined. Lightning refuses ``Trainer(accumulate_grad_batches>1)`` under manual optimisation,
so gradient accumulation is this step's own, explicit argument (``builders.build_trainer``
gives the Trainer 1 on this path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from peftlab.batch import call_body, inputs_size
from peftlab.errors import ConfigError
from peftlab.distributed import all_reduce_mean, all_reduce_sum, world_size

if TYPE_CHECKING:
    from peftlab.models.multitask_module import MultiTaskModule


class PerTaskGradientStep:
    """One micro-batch of the per-task-gradient path.

    1. one forward; per-task losses; the loss-based objective (if any) and dObjective/dL_i;
    2. one ``autograd.grad`` per task into a preallocated [T, P] float32 buffer (each task's
       gradient tensors are freed as soon as they are copied in);
    3. DDP: average the buffer over ranks (one collective) — global-batch semantics;
    4. per-task clipping (optional), combination Σ α_i g_i on the shared part, each head
       gets its own task's gradient; add into ``.grad`` divided by the accumulation count;
    5. at the end of an accumulation window (or of the epoch), ``optimizer.step()`` (Lightning
       unscales 16-mixed gradients and calls ``on_before_optimizer_step``, where clipping and
       the guard run).

    Args:
        accumulate_grad_batches: micro-batches per optimizer step (an integer >= 1); a window that
            does not divide the epoch is stepped at the epoch's last batch.
    """

    automatic_optimization = False

    def __init__(self, accumulate_grad_batches: int = 1):
        if isinstance(accumulate_grad_batches, bool) or not isinstance(accumulate_grad_batches, int) or accumulate_grad_batches < 1:
            raise ConfigError("trainer.accumulate_grad_batches", f"must be an integer >= 1; got {accumulate_grad_batches!r}")
        self.accumulate_grad_batches = accumulate_grad_batches

    def __call__(self, module: "MultiTaskModule", batch: dict, batch_idx: int) -> torch.Tensor | None:
        """Compute, combine and accumulate the gradients; step the optimizer at the end of a window."""
        features = call_body(module.body, batch["inputs"], batch["task_mask"])
        device = batch["y"].device
        losses = module.task_losses(module.heads(features), batch)
        optimizer = module.optimizers()
        if module.skip_bad_losses(losses):
            optimizer.zero_grad(set_to_none=True)  # drop the whole accumulation window
            return None
        names = list(losses)
        weighting = module.weighting
        gradient_method = weighting.needs_task_gradients
        objective = weighting(losses)
        wparams = [p for p in weighting.parameters() if p.requires_grad]
        loss_coeffs, wgrads = None, []
        if not gradient_method:  # loss-based weighting under per-task clipping: α_i = ∂objective/∂L_i
            grads = torch.autograd.grad(objective, [losses[n] for n in names] + wparams, retain_graph=True, allow_unused=True)
            loss_coeffs = torch.stack([g if g is not None else torch.zeros(()) for g in grads[: len(names)]]).float()
            wgrads = list(grads[len(names) :])

        scaler = getattr(module.trainer.precision_plugin, "scaler", None)
        # 16-mixed: scale the task losses like scaler.scale(loss) would (this also initialises the
        # scaler's lazily created scale); Lightning unscales the combined gradient before clipping
        scale = float(scaler.scale(torch.ones((), device=device))) if scaler is not None else 1.0
        shared = module.body.shared_parameters()
        skip = {id(p) for p in shared} | {id(p) for p in wparams}
        rest = [p for p in module.trainable_parameters() if id(p) not in skip]  # heads (+ per-task backbones)
        rep = module.representation(features) if getattr(weighting, "mode", "params") == "representation" else None
        targets = ([rep] if rep is not None else shared) + rest
        n_shared = rep.numel() if rep is not None else sum(p.numel() for p in shared)
        sizes = [t.numel() for t in targets]
        rows = torch.zeros(len(names), sum(sizes), device=device)
        for k, name in enumerate(names):
            grads = torch.autograd.grad(losses[name] * scale, targets, retain_graph=True, allow_unused=True)
            offset = 0
            for g, n in zip(grads, sizes):
                if g is not None:
                    rows[k, offset : offset + n] = g.reshape(-1)
                offset += n
            del grads

        world = world_size()
        if rep is None:
            all_reduce_mean(rows)  # global-batch semantics: average each task's gradient over ranks
        else:
            all_reduce_mean(rows[:, n_shared:])
        bad = [n for n, ok in zip(names, torch.isfinite(rows).all(dim=1).tolist()) if not ok]
        if bad and scaler is None:  # (with a grad scaler the scaler skips the step and lowers its scale)
            optimizer.zero_grad(set_to_none=True)  # drop the whole accumulation window
            module.guard.record_bad("gradient", bad)
            return None
        if module.clipping.per_task:
            module.clipping.clip_rows(rows, scale)

        head_rows = rows[:, n_shared:]
        shared_rows = rows[:, :n_shared]
        present = [module.task_names.index(n) for n in names]
        if gradient_method:
            if rep is None:
                d_shared = weighting.combine_gradients(shared_rows, present)
            else:  # features differ per rank: Gram of the global gradient = Σ_rank Gram / W²
                gram = all_reduce_sum(shared_rows.double() @ shared_rows.double().T) / world**2
                coeffs = weighting.record(weighting.coefficients(gram.cpu().numpy()), present)
                d_shared = coeffs.to(rows) @ shared_rows
            d_rest = head_rows.sum(dim=0)
        else:
            d_shared = loss_coeffs.to(rows) @ shared_rows
            d_rest = loss_coeffs.to(rows) @ head_rows
        del rows, shared_rows, head_rows

        if rep is not None:  # backward from the features through the backbone, then average
            grads = torch.autograd.grad(rep, shared, grad_outputs=d_shared.view_as(rep).to(rep.dtype), allow_unused=True)
            d_shared = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, shared)]) if shared else d_shared.new_zeros(0)
            all_reduce_mean(d_shared)
        if wgrads:
            flat_w = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() * scale for g, p in zip(wgrads, wparams)])
            all_reduce_mean(flat_w)
        else:
            flat_w = torch.zeros(0, device=device)
        factor = 1.0 / self.accumulate_grad_batches
        for params, flat in ((shared, d_shared), (rest, d_rest), (wparams, flat_w)):
            add_grads(params, flat, factor)

        module.log_losses(objective, losses, inputs_size(batch["inputs"]))
        if (batch_idx + 1) % self.accumulate_grad_batches == 0 or module.trainer.is_last_batch:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return objective.detach()


def add_grads(params: list[nn.Parameter], flat: torch.Tensor, factor: float) -> None:
    """Add slices of ``flat`` (× factor) to the parameters' ``.grad``.

    A missing ``.grad`` becomes a view into ``flat`` (no copy: the combined gradient's buffer is
    the gradient storage until ``zero_grad``), which keeps the per-step peak at T + 1 copies of
    the shared gradient rather than T + 4.
    """
    if factor != 1.0:
        flat.mul_(factor)
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
        if p.grad is None:
            p.grad = g if g.dtype == p.dtype else g.to(p.dtype)
        else:
            p.grad.add_(g)
