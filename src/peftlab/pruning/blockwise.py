"""Block-by-block calibration, as the Wanda and SparseGPT reference code does (``prune_wanda``, ``llama_sequential``).

A transformer is a chain of blocks in one ``nn.ModuleList`` (BERT's ``encoder.layer``, GPT-2's
``h``, Llama's ``layers``): block i+1's hidden input is block i's output, and the other
arguments (attention mask, position embeddings) are the model's, computed before the chain. So
the model runs once per calibration batch to record each block's arguments; then, block after
block, one forward of the block over the cached hidden states collects the statistics of all its
layers (forward pre-hooks), the block's layers are pruned, and a second forward of the now pruned
block gives the next block's hidden states. Cost: about three forwards of the model per batch,
instead of one partial forward per layer. Within a block every layer is scored from the same
block inputs (the reference code's order). Found generically: the ModuleList holding the most
targets; used only when one forward shows its blocks are chained (else the caller goes layer by
layer). Written by hand: neither torch nor transformers has a layer-wise calibration driver.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from peftlab.pruning.calibration import Run, layer_inputs, token_mask

NO_CACHE = ("past_key_value", "past_key_values", "layer_past", "cache")  # a decoder's KV cache: re-running a block must not append to it


def _no_cache(value: Any) -> Any:
    """None for a Hugging Face KV cache object (GPT-2 passes it positionally), the value otherwise."""
    return None if any(c.__name__ == "Cache" for c in type(value).__mro__) else value


def find_blocks(model: nn.Module, modules: Sequence[nn.Module]) -> list[nn.Module]:
    """The blocks of the ``nn.ModuleList`` holding most of ``modules`` (at least two); [] if none does."""
    ids = {id(m) for m in modules}
    best: list[nn.Module] = []
    best_n = 1
    for m in model.modules():
        if isinstance(m, nn.ModuleList):
            n = sum(1 for block in m for x in block.modules() if id(x) in ids)
            if n > best_n:  # strict: an outer list wins ties over a list nested in its blocks
                best, best_n = list(m), n
    return best


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """A block's hidden-state input: its first positional argument or ``hidden_states=``."""
    return args[0] if args else kwargs.get("hidden_states")


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor | None) -> tuple[tuple, dict]:
    """``(args, kwargs)`` with the hidden-state input replaced by ``hidden``."""
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _output(out: Any) -> torch.Tensor:
    """A block's hidden-state output (the first element when it returns a tuple)."""
    return out[0] if isinstance(out, (tuple, list)) else out


class BlockInputs:
    """The cached inputs of a chain of blocks over the calibration batches.

    ``capture`` runs the model once per batch; afterwards ``hidden[b]`` is the current block's
    hidden input for batch b and ``calls[b][i]`` block i's other arguments.
    """

    def __init__(self, blocks: Sequence[nn.Module], use_mask: bool = True):
        self.blocks, self.use_mask = list(blocks), use_mask  # use_mask False: rows reordered by task (task_lora), the mask does not line up
        self.hidden: list[torch.Tensor] = []
        self.calls: list[list[tuple[tuple, dict]]] = []
        self.masks: list[torch.Tensor | None] = []
        self.tuple_out = False  # whether a block returns a tuple (its hidden state first)
        self.advanced = 0  # blocks whose outputs have replaced the cached hidden states

    @torch.no_grad()
    def capture(self, run: Run, batches: Sequence[Any]) -> bool:
        """Record every block's arguments on every batch; False when the blocks are not a chain."""
        for batch in batches:
            calls: list[Any] = [None] * len(self.blocks)
            state = {"last": None, "chained": True, "first": None}
            handles = []
            for i, block in enumerate(self.blocks):

                def pre(_m, args, kwargs, i=i):
                    hidden = _hidden(args, kwargs)
                    if calls[i] is not None or not isinstance(hidden, torch.Tensor):
                        state["chained"] = False  # called twice, or no hidden-state tensor
                    elif i == 0:
                        state["first"] = hidden
                    elif not (hidden is state["last"] or (state["last"] is not None and hidden.shape == state["last"].shape and torch.equal(hidden, state["last"]))):
                        state["chained"] = False  # something sits between block i-1 and block i
                    args = tuple(_no_cache(a) for a in args)
                    kwargs = {k: (None if k in NO_CACHE else _no_cache(v)) for k, v in kwargs.items()}
                    if "use_cache" in kwargs:
                        kwargs["use_cache"] = False
                    calls[i] = _with_hidden(args, kwargs, None)  # the hidden state itself is not kept (memory)

                def post(_m, _args, out, i=i):
                    state["last"] = _output(out)
                    self.tuple_out = isinstance(out, (tuple, list))

                handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
                handles.append(block.register_forward_hook(post))
            try:
                run(batch)
            finally:
                for h in handles:
                    h.remove()
            if not state["chained"] or any(c is None for c in calls):
                return False
            self.hidden.append(state["first"])
            self.calls.append(calls)
            mask = token_mask(batch) if self.use_mask else None
            self.masks.append(mask.to(state["first"].device) if mask is not None else None)
        return True

    @torch.no_grad()
    def collect(self, i: int, modules: Sequence[nn.Module], folds: Sequence[Callable[[torch.Tensor], None]]) -> list[int]:
        """One forward of block ``i`` over every cached batch, ``folds[j](X)`` with ``modules[j]``'s inputs; token counts."""
        seen = [0] * len(modules)
        current: dict[str, Any] = {"mask": None}
        handles = []
        for j, module in enumerate(modules):

            def hook(_m, args, j=j):
                x = layer_inputs(args[0], current["mask"])
                seen[j] += x.shape[0]
                folds[j](x)

            handles.append(module.register_forward_pre_hook(hook))
        try:
            for b in range(len(self.hidden)):
                current["mask"] = self.masks[b]
                self._run(i, b)
        finally:
            for h in handles:
                h.remove()
        return seen

    @torch.no_grad()
    def advance(self, i: int) -> None:
        """Replace the cached hidden states by block ``i``'s outputs (block i already pruned): block i+1's inputs."""
        self.hidden = [self._run(i, b) for b in range(len(self.hidden))]
        self.advanced += 1

    def replaying(self, run: Run, batches: Sequence[Any]) -> Run:
        """``run`` with every block answering the cached hidden states of its batch without computing.

        Once every block is pruned and advanced, ``hidden`` holds the chain's outputs; a layer after
        the chain (a pooler) then costs the model's forward outside the blocks only. The batches
        must be the cached ones (matched by identity).
        """
        index = {id(batch): b for b, batch in enumerate(batches)}

        def replay(batch: Any) -> Any:
            out = self.hidden[index[id(batch)]]
            answer = (out,) if self.tuple_out else out
            for block in self.blocks:  # an instance attribute shadows the class's forward; hooks still run
                block.forward = lambda *_a, _answer=answer, **_k: _answer
            try:
                return run(batch)
            finally:
                for block in self.blocks:
                    del block.forward

        return replay

    def _run(self, i: int, b: int) -> torch.Tensor:
        """Block ``i`` on batch ``b``'s cached inputs; its hidden-state output."""
        args, kwargs = _with_hidden(*self.calls[b][i], self.hidden[b])
        return _output(self.blocks[i](*args, **kwargs))
