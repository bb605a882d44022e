"""Next-token cross-entropy per position that keeps no ``[N, V]`` tensor of its own for the backward.

Why by hand: ``F.cross_entropy`` is ``log_softmax`` + ``nll_loss``; it keeps the log-softmax output
(one more ``[N, V]`` float32 tensor) for the backward, whose ``nll_loss`` step writes a second one
(the gradient of the log-probabilities, zero but for one entry a row) before ``log_softmax``'s
backward writes the third, the gradient of the logits. At a 50k vocabulary those are 206 MB each for
GPT-2 at batch 4 x 256 (and 5 GB each for a 150k-vocabulary model at 4 x 2048): more than the
LoRA factors, their gradients and optimizer state together. torch has no fused CPU kernel for it
(Liger-Kernel's fused linear cross-entropy is Triton, GPU only), so this one keeps only a
``logsumexp`` per position (computed in 64 MB chunks) and rebuilds ``softmax - onehot`` in the
backward. In the step's last backward (:func:`consuming_logits`) it does so inside the float32 logits
themselves, which become their own gradient: no ``[N, V]`` tensor beyond the logits at any point.
Elsewhere (a batched backward, a gradient taken before the step's last) it builds the gradient out of
place. The values equal ``F.cross_entropy(..., reduction="none")``'s (tested to float32 rounding).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

IGNORE = -100  # label of a position that is not scored
CHUNK_ELEMENTS = 1 << 24  # logits per logsumexp chunk: its float32 temporary is 64 MB at most (not one more [N, V])


def _logsumexp(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` of each row in float32, a chunk of rows at a time (no full-size float32 temporary)."""
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    step = max(1, CHUNK_ELEMENTS // max(1, logits.shape[-1]))
    for start in range(0, logits.shape[0], step):
        out[start : start + step] = torch.logsumexp(logits[start : start + step].float(), dim=-1)
    return out


_CONSUME = threading.Event()  # not a ContextVar: on CUDA the autograd engine runs the backward on its own thread


@contextmanager
def consuming_logits() -> Iterator[None]:
    """Let :class:`TokenCrossEntropy` write the logits' gradient into the float32 logits themselves
    during the backward passes run inside: one ``[N, V]`` tensor fewer at the backward's peak.

    Only for the last backward of a step (``MultiTaskModule.backward``, Lightning's automatic path):
    after it nothing reads the logits, and the function's own saved tensor cannot be read twice
    (autograd's version check would refuse a second backward through it loudly, never silently).
    The caller's thread waits for the backward, so a process-wide flag is what the engine's device
    threads see."""
    was = _CONSUME.is_set()
    _CONSUME.set()
    try:
        yield
    finally:
        if not was:
            _CONSUME.clear()


class TokenCrossEntropy(torch.autograd.Function):
    """``token_cross_entropy(logits [N, V], target [N]) -> [N]``: float32 cross-entropy of each position
    (0 where the target is ``IGNORE``); its backward is once-differentiable."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-position ``logsumexp(logits) - logits[target]`` (float32)."""
        scored = target != IGNORE
        index = target.masked_fill(~scored, 0)
        lse = _logsumexp(logits)
        picked = logits.gather(1, index[:, None]).squeeze(1).float()
        ctx.save_for_backward(logits, index, scored, lse)
        return (lse - picked).masked_fill(~scored, 0.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """``grad_n · (softmax(logits_n) - onehot(target_n))`` per scored row, 0 elsewhere, in the logits' dtype."""
        logits, index, scored, lse = ctx.saved_tensors
        g = grad.float().masked_fill(~scored, 0.0)[:, None]
        if _CONSUME.is_set() and logits.dtype == torch.float32:  # the step's last backward: the logits become their gradient
            out = logits.sub_(lse[:, None]).exp_().mul_(g)
        else:  # out of place: ``g`` may carry T rows (a batched backward, is_grads_batched / torch.func.vmap)
            out = (logits.float() - lse[:, None]).exp_() * g
        out.scatter_add_(-1, index[:, None], -g)
        out = out.to(logits.dtype)
        return out, None


def token_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Float32 cross-entropy of each row of ``logits`` ``[N, V]`` against ``target`` ``[N]`` (0 where it is -100)."""
    return TokenCrossEntropy.apply(logits, target)
