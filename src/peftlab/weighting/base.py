"""The base classes every task-weighting method implements.

Two kinds of method:

* **loss-based** (:class:`Weighting`): ``combine(losses)`` returns the scalar objective; Lightning's
  automatic optimisation does one backward pass. Equal, fixed, uncertainty, DWA, RLW, FAMO and
  GradNorm (which additionally looks at the gradient norms of the last shared layer).
* **gradient-based** (:class:`GradientWeighting`): :func:`peftlab.models.per_task_backward.per_task_backward`
  computes one gradient per task of the shared parameters (or of the shared representation),
  averages them across DDP ranks and hands the rows to :meth:`Weighting.combine_gradients`, the
  one hook a gradient method needs (a method that works on the raw rows, GradDrop or GradVac,
  overrides it). A method that does not override it (PCGrad, CAGrad, MGDA, IMTL-G, UPGrad, …)
  only needs the T×T Gram matrix of the task gradients: the combined gradient is ``Σ_i α_i g_i``
  with α computed from ``G Gᵀ`` by :meth:`GradientWeighting.coefficients`, and
  (:attr:`Weighting.combines_from_gram`) ``per_task_backward`` then sums the Gram matrix per
  parameter block and writes the combination straight into ``.grad``, never building the rows.

What a method needs from the training step is declared on :class:`Weighting` as class attributes
(``needs_task_gradients``, ``uses_shared``, ``mode`` with its allowed ``MODES``); the module reads
them directly, never with a ``getattr`` default.

Conventions shared by all methods:

* α is reported on the scale of equal weighting (Σα = T for methods that normalise), so the
  learning rate means the same thing whichever method is chosen.
* Any state that influences training (loss histories, learned logits, random draws) is computed
  from values averaged over DDP ranks, or from seeded generators keyed by the step count, so it
  is identical on every rank and survives a checkpoint restart.
* State changes once per **optimizer step** (:meth:`on_optimizer_step`), not per micro-batch, so
  gradient accumulation over k micro-batches behaves like one k-times larger batch for the
  loss-based methods.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from peftlab.distributed import all_reduce_sum, world_size
from peftlab.validators import check_choice

#: :attr:`Weighting.mode` of methods whose per-task gradients are taken of the shared features.
REPRESENTATION = "representation"


class Weighting(nn.Module):
    """Combines per-task losses into the objective the optimizer minimises.

    A method is one subclass in one file. Loss-based methods override :meth:`combine`.
    :meth:`setup` receives the task names once the data is known (validate config there and
    raise :class:`~peftlab.errors.ConfigError`). :meth:`alpha` reports the effective weight of
    each task, which is logged every step and written to ``metrics.json``.

    ``losses`` holds only the tasks present in the batch (mixed-task batches carry one task).
    """

    #: True for methods that combine per-task gradients in :meth:`combine_gradients` (the module
    #: then trains with manual optimisation and ``per_task_backward``). Default: False.
    needs_task_gradients: bool = False
    #: True for methods that want ``combine(losses, shared=[tensors])``: the shared tensors their
    #: gradient norms are taken on (GradNorm). Default: False.
    uses_shared: bool = False
    #: What the method's gradients are taken of (``strategy.weighting.mode``), one of :attr:`MODES`:
    #: ``representation`` — the shared features; any other value — shared parameters (``params``:
    #: all of them; GradNorm's ``layer``: the last shared weight matrix). Default: ``params``
    #: (methods that look at no gradient keep it).
    mode: str = "params"
    #: The values :attr:`mode` may take; subclasses with a ``mode`` argument declare theirs.
    MODES: tuple[str, ...] = ("params",)

    def __init__(self):
        super().__init__()
        self.task_names: list[str] = []

    def setup(self, task_names: Sequence[str]) -> None:
        """Learn the task names (called once, before training)."""
        self.task_names = list(task_names)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar objective built from per-task losses."""
        raise NotImplementedError

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`combine`."""
        return self.combine(losses)

    @property
    def on_representation(self) -> bool:
        """True when :attr:`mode` takes gradients of the shared features rather than of shared parameters."""
        return self.mode == REPRESENTATION

    def check_mode(self, mode: str) -> str:
        """``mode`` if it is one of :attr:`MODES`, else a ConfigError naming ``strategy.weighting.mode``."""
        return check_choice("strategy.weighting.mode", mode, self.MODES)

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """The shared update (length P) from the per-task gradient rows ``[T, P]`` (methods with
        :attr:`needs_task_gradients` implement this; it is the only thing the step asks of them).

        ``present``: the task index of each row. ``per_rank``: the rows are this rank's only (gradients
        of the shared features, which differ per rank) rather than already averaged over DDP ranks.
        """
        raise NotImplementedError(f"{type(self).__name__} does not combine per-task gradients")

    @property
    def combines_from_gram(self) -> bool:
        """True when the update is ``Σ_i α_i g_i`` with α from the Gram matrix alone (:meth:`gram_coefficients`):
        ``per_task_backward`` then never builds the flat rows. False here (loss-based methods)."""
        return False

    def alpha(self) -> dict[str, float]:
        """Effective weight of each task at this point of training."""
        raise NotImplementedError

    def on_optimizer_step(self) -> None:
        """Called once after each (non-skipped) optimizer step; update state here."""

    def on_epoch_end(self) -> None:
        """Called at the end of every training epoch on every rank (collectives allowed)."""

    def sync_partial_state(self) -> None:
        """Called on every rank before a checkpoint is saved (collectives allowed).

        A method that keeps per-rank running state outside its buffers (DWA's partial-epoch sums)
        gathers it here so that the checkpoint, written from rank 0, holds all of it.
        """

    # helpers ------------------------------------------------------------------------------
    def _loss_vector(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached float64 losses in task order (0 where absent) and a presence mask, on the losses' device."""
        device = next(iter(losses.values())).device
        values = torch.zeros(len(self.task_names), dtype=torch.float64, device=device)
        present = torch.zeros(len(self.task_names), dtype=torch.bool, device=device)
        for i, name in enumerate(self.task_names):
            if name in losses:
                values[i] = losses[name].detach().double()
                present[i] = True
        return values, present

    def _global_losses(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The losses of the global batch (float64, task order) and this batch's presence mask: each task's
        loss averaged over the DDP ranks whose batch holds it (1 where no rank has it)."""
        values, present = self._loss_vector(losses)
        totals = all_reduce_sum(torch.cat([values, present.double()]))
        t = len(self.task_names)
        seen = totals[t:] > 0
        return torch.where(seen, totals[:t] / totals[t:].clamp(min=1), torch.ones_like(values)), present


class GradientWeighting(Weighting):
    """A method that combines per-task gradients ``g_i`` into one update ``Σ_i α_i g_i``.

    Subclasses implement :meth:`coefficients` from the Gram matrix ``A = G Gᵀ`` (float64 numpy,
    T×T, tasks present in the batch only); :meth:`combine_gradients` builds the Gram matrix (summed
    over DDP ranks in ``representation`` mode) and the update. ``per_task_backward`` does the rest:
    per-task gradients, DDP averaging, writing ``.grad``. Each head (task-specific parameters)
    receives its own task's gradient unweighted.

    Args:
        mode: ``params`` — gradients of all shared parameters (T × shared-parameter floats kept
            while combining); ``representation`` — gradients of the shared features
            (T × batch × feature floats; one extra backward through the backbone; much cheaper
            for large backbones, an approximation of the parameter-space method).
        seed: seed of any random choice the method makes (same on every rank).
    """

    needs_task_gradients = True
    MODES = ("params", REPRESENTATION)

    def __init__(self, mode: str = "params", seed: int = 0):
        super().__init__()
        self.mode = self.check_mode(mode)
        self.seed = int(seed)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_alpha", torch.empty(0))

    def setup(self, task_names: Sequence[str]) -> None:
        """Start from α = 1 for every task (what is reported before the first step)."""
        super().setup(task_names)
        self.last_alpha = torch.ones(len(self.task_names))

    def coefficients(self, gram: np.ndarray) -> np.ndarray:
        """Combination weights α (length T) from the Gram matrix of the task gradients."""
        raise NotImplementedError

    @property
    def combines_from_gram(self) -> bool:
        """True unless the subclass overrides :meth:`combine_gradients` (a method on the raw rows, or one
        that keeps state of them): its update is then ``Σ_i α_i g_i`` with α from :meth:`gram_coefficients`."""
        return type(self).combine_gradients is GradientWeighting.combine_gradients

    def combine_gradients(self, rows: torch.Tensor, present: Sequence[int] | None = None, per_rank: bool = False) -> torch.Tensor:
        """``Σ_i α_i g_i`` for the rows ``g_i`` of ``rows`` ([T, P]), α from their Gram matrix; records α for :meth:`alpha`."""
        coeffs = self.gram_coefficients(self.gram_matrix(rows, per_rank), present)
        return coeffs.to(rows) @ rows

    def gram_coefficients(self, gram: torch.Tensor, present: Sequence[int] | None = None) -> torch.Tensor:
        """α (float64 tensor, recorded for :meth:`alpha`) from the Gram matrix ``G Gᵀ`` of the present tasks' gradients."""
        return self.record(self.coefficients(gram.cpu().numpy()), present)

    def gram_matrix(self, rows: torch.Tensor, per_rank: bool = False) -> torch.Tensor:
        """``G Gᵀ`` of the rows as float64 (summed over DDP ranks / W² when ``per_rank``: the global gradient's Gram matrix)."""
        if per_rank:  # rows of different samples: the global gradient's Gram matrix = Σ_rank Gram / W²
            return all_reduce_sum(rows.double() @ rows.double().T) / world_size() ** 2
        return (rows @ rows.T).double()  # T×T: product in the rows' precision, solve in float64

    def record(self, coeffs: np.ndarray, present: Sequence[int] | None = None) -> torch.Tensor:
        """Store α of the present tasks (for :meth:`alpha`) and return it as a float64 tensor (the caller casts it to the rows' dtype)."""
        coeffs_t = torch.as_tensor(np.asarray(coeffs, dtype=np.float64), dtype=torch.float64)
        idx = list(range(len(self.task_names))) if present is None else list(present)
        if bool(torch.isfinite(coeffs_t).all()):
            self.last_alpha[idx] = coeffs_t.to(self.last_alpha)
        return coeffs_t

    def generator(self) -> np.random.Generator:
        """A random generator keyed by (seed, optimizer step): identical on every rank, resumable."""
        return np.random.default_rng([self.seed, int(self.steps)])

    def on_optimizer_step(self) -> None:
        """Count optimizer steps (keys the random generator)."""
        self.steps += 1

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Plain sum (used only for logging: the update is built from gradients)."""
        return torch.stack(list(losses.values())).sum()

    def alpha(self) -> dict[str, float]:
        """The coefficients of the last combination."""
        return {name: float(a) for name, a in zip(self.task_names, self.last_alpha)}
