"""SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot").

Per layer, with ``H = 2·XᵀX / tokens`` the Hessian of ``‖WX − ŴX‖²`` over the calibration
inputs: columns are processed left to right; pruning column ``i``'s chosen entries leaves an
error that the optimal-brain-surgeon update spreads over the columns not yet processed, using
the rows of the upper Cholesky factor of ``H⁻¹`` (the inverse Hessian with the earlier columns
eliminated). Columns go in blocks of ``blocksize``: inside a block updates are immediate, the
rest of the matrix gets them once per block (lazy batch updates). Which entries to prune is
chosen per block from ``w² / [H⁻¹]_ii²`` (adaptive mask selection), or per group of M columns
for N:M. Written by hand (as the paper's reference code): torch.nn.utils.prune only masks and
cannot update the surviving weights; the masks go into the usual buffers.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from peftlab.errors import ConfigError
from peftlab.pruning.criteria.base import amount_to_k
from peftlab.pruning.criteria.calibrated import CalibratedCriterion
from peftlab.validators import check_fraction, check_int

KEY = "strategy.pruning.criterion"


def inverse_hessian_factor(hessian: torch.Tensor, dampening: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + λI)⁻¹``, ``λ = dampening · mean(diag H)``; dead inputs (diag 0) get 1."""
    H = hessian.clone().float()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0  # an input that is always zero: no information, keep the matrix invertible
    H += dampening * torch.mean(torch.diag(H)) * torch.eye(H.shape[0], device=H.device)
    try:
        return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError:
        raise ConfigError(f"{KEY}.dampening", f"{dampening:g} leaves the calibration Hessian singular; raise it (e.g. 0.1)") from None


def _lowest(scores: torch.Tensor, k: int, forced: torch.Tensor | None) -> torch.Tensor:
    """Bool mask (True = prune) of the ``k`` lowest scores, plus every ``forced`` entry."""
    out = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if forced is not None:  # already-pruned entries count among the k (lazy updates made them non-zero)
        scores = scores.masked_fill(forced, float("-inf"))
    if k > 0:
        out.view(-1)[torch.topk(scores.reshape(-1), k, largest=False).indices] = True
    return out | forced if forced is not None else out


@contextmanager
def one_thread():
    """``with one_thread():`` torch's intra-op threads set to 1 inside, restored after.

    SparseGPT's column loop is thousands of small ops on one row block; with several threads each
    op waits for a thread team (measured here: addr_ on 128 x 1536, 0.02 ms on one thread, 0.55 ms on two).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    n_m: tuple[int, int] | None = None,
    blocksize: int = 128,
    dampening: float = 0.01,
    pruned: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Ŵ, keep)``: the reconstructed weight (float32, pruned entries zero) and its bool keep-mask.

    ``pruned``: a 0/1 mask whose zeros must stay pruned; ``mask``: a fixed 0/1 keep-mask (no
    selection, only the reconstruction).
    """
    W = weight.detach().float().clone(memory_format=torch.contiguous_format)  # (a Conv1D weight comes transposed)
    rows, cols = W.shape
    Hinv = inverse_hessian_factor(hessian, dampening)
    gone = (pruned == 0).contiguous() if pruned is not None else None
    drop = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        d = torch.diag(Hinv1)
        ErrT = torch.empty(i2 - i1, rows, dtype=W.dtype, device=W.device)  # the block's errors, one contiguous row per column
        forced = gone[:, i1:i2] if gone is not None else None
        if mask is not None:
            drop1 = mask[:, i1:i2] == 0
        elif n_m is None:
            drop1 = _lowest(W1**2 / d.reshape(1, -1) ** 2, amount_to_k(sparsity, W1.numel()), forced)
        else:
            drop1 = torch.zeros_like(W1, dtype=torch.bool)
        scaleT = (drop1 / d.reshape(1, -1)).t().contiguous()  # err = (w - q) / d = w * drop / d: q is w with the dropped entries zeroed
        W1T = W1.t().contiguous()  # columns as contiguous rows: the per-column updates touch contiguous memory
        with one_thread():  # hundreds of tiny per-column ops: thread start-up would cost more than the work
            for i in range(i2 - i1):
                if n_m is not None and mask is None and i % n_m[1] == 0:
                    m = n_m[1]
                    tmp = W1T[i : i + m].t() ** 2 / d[i : i + m].reshape(1, -1) ** 2
                    if forced is not None:
                        tmp[forced[:, i : i + m]] = float("-inf")
                    k = min(m - n_m[0], int(round(sparsity * m)))
                    if k > 0:
                        drop1[:, i : i + m].scatter_(1, torch.topk(tmp, k, dim=1, largest=False).indices, True)
                    scaleT[i : i + m] = (drop1[:, i : i + m] / d[i : i + m].reshape(1, -1)).t()
                torch.mul(W1T[i], scaleT[i], out=ErrT[i])
                W1T[i:].addr_(Hinv1[i, i:], ErrT[i], alpha=-1.0)  # OBS update of the block's remaining columns (column i becomes q)
        W[:, i1:i2] = W1T.t().masked_fill(drop1, 0.0)  # (kept entries are exactly q already; dropped ones are w - w, zeroed exactly)
        W[:, i2:] -= ErrT.t() @ Hinv[i1:i2, i2:]  # lazy batch update of everything right of the block
        drop[:, i1:i2] = drop1
    return W, ~drop


class SparseGPT(CalibratedCriterion):
    """Layer-wise OBS reconstruction from calibration inputs (``strategy/pruning=sparsegpt``).

    Args:
        n_m: ``[N, M]`` for N:M semi-structured sparsity (e.g. ``[2, 4]``), or null.
        blocksize: columns per lazy-update block (the paper: 128); a multiple of M for N:M.
        dampening: λ = dampening · mean(diag H) added to the Hessian's diagonal (the paper: 0.01).
    """

    name = "sparsegpt"

    def __init__(self, n_m=None, blocksize: int = 128, dampening: float = 0.01):
        super().__init__(n_m)
        self.blocksize = check_int(f"{KEY}.blocksize", blocksize, minimum=1)
        self.dampening = check_fraction(f"{KEY}.dampening", dampening, allow_zero=True, allow_one=True)
        if self.n_m is not None and self.blocksize % self.n_m[1]:
            raise ConfigError(f"{KEY}.blocksize", f"must be a multiple of M={self.n_m[1]} for N:M (groups may not straddle blocks); got {blocksize}")

    def new_stats(self, width, device):
        return {"xtx": torch.zeros(width, width, dtype=torch.float32, device=device)}

    def fold(self, stats, x):
        stats["xtx"].addmm_(x.t(), x)

    def layer_mask(self, weight, stats, tokens, sparsity, pruned):
        hessian = stats["xtx"] * (2.0 / max(1, tokens))
        w, keep = sparsegpt_prune(weight, hessian, sparsity, self.n_m, self.blocksize, self.dampening, pruned)
        weight.copy_(w.to(weight.dtype))  # (a view: a Conv1D weight is written back transposed)
        return keep.float()
