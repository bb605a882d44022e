"""Task-routed LoRA: one LoRA adapter per task on one frozen base, all trained in one forward.

Each sample goes through its own task's adapter: a mixed batch (one task per row) is one
forward of ``B`` rows, a jointly labelled batch (every row labelled for every task) is one
forward of ``B × T`` rows (each row once per task, stacked), anything in between is one forward
of the labelled (row, task) pairs. Optionally a shared adapter (``shared_r > 0``) applies to
every row, with the small per-task adapters on top.

Why not peft's own routing: peft routes rows to adapters only through ``adapter_names``, which
:class:`peft.PeftModel` refuses in training mode, and its layer-level ``_mixed_batch_forward``
gathers every adapter's rows with Python index lists in every layer. Here the adapters are peft's
own LoRA layers (injected with :func:`peft.inject_adapter_in_model`, one adapter per task), so
weights, names and export stay peft's; only the forward of each LoRA ``Linear`` is replaced
(:class:`TaskRoutedLinear`): the body sorts the stacked rows by task once, and every layer runs
``lora_t`` on its task's contiguous slice of rows (a view, no gather) and adds the concatenated
deltas. A task absent from
the batch is never called, so its adapter gets no gradient at all (AdamW leaves it untouched).
peft's ``set_adapter`` is never called (it would flip ``requires_grad`` of the other adapters):
what trains is recorded once, when the body is built. Which rows go to which task is
:mod:`peftlab.sharing.routing`'s (adapter-agnostic); writing one task's adapter as a peft
adapter folder is :mod:`peftlab.sharing.task_lora_export`'s.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from peftlab.errors import ConfigError
from peftlab.sharing.base import AdapterLayer, PolicyBody, SharingPolicy
from peftlab.sharing.lora_targets import default_lora_targets, linear_layer_names
from peftlab.sharing.peft_layers import tuner_layers, tuner_modules
from peftlab.sharing.routing import Routing, route_rows
from peftlab.sharing.task_lora_export import export_task_adapter, refuse_merged_export
from peftlab.validators import check_int

KEY = "strategy.sharing"
SHARED = "shared_lora"  # adapter name of the optional shared adapter
__all__ = ["Routing", "SHARED", "TaskLoRA", "TaskLoraBody", "TaskRoutedLinear", "export_task_adapter"]


def _lora_linear_class():
    from peft.tuners.lora import Linear

    return Linear


def _routed_class():
    """:class:`TaskRoutedLinear` is defined lazily so that importing peftlab does not import peft."""
    global TaskRoutedLinear
    if "TaskRoutedLinear" in globals():
        return TaskRoutedLinear
    LoraLinear = _lora_linear_class()

    class TaskRoutedLinear(LoraLinear):
        """peft's LoRA ``Linear`` whose adapters apply to the row ranges of :class:`Routing`.

        ``base(x) + Σ_shared lora_s(x) + concat_t lora_t(x[rows of t])`` over the tasks of the batch.
        Weights, ``merge`` and peft's state-dict names are unchanged (only ``forward`` differs).
        """

        task_routing: Routing

        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            routing = self.task_routing
            if routing.segments is None:
                raise RuntimeError("a task-routed LoRA layer ran outside TaskLoraBody.forward: call the body, which sets each row's task")
            if self.merged or self.disable_adapters:
                return super().forward(x, *args, **kwargs)
            result = self.base_layer(x, *args, **kwargs)
            for name in routing.shared:
                if name in self.lora_A:
                    result = result + self._delta(name, x).to(result.dtype)
            # rows are sorted by task, so each task's rows are one contiguous slice of x (a view, no
            # gather); the segments tile the batch, so the deltas concatenate into one tensor
            parts = [self._delta(name, x[start:end]) if name in self.lora_A else x.new_zeros(end - start, *result.shape[1:]) for name, start, end in routing.segments if end > start]
            if parts:
                result = result + (parts[0] if len(parts) == 1 else torch.cat(parts)).to(result.dtype)
            return result

        def _delta(self, name: str, x: torch.Tensor) -> torch.Tensor:
            lora_a = self.lora_A[name]
            x = x.to(lora_a.weight.dtype)
            return self.lora_B[name](lora_a(self.lora_dropout[name](x))) * self.scaling[name]

    TaskRoutedLinear.__qualname__ = "TaskRoutedLinear"  # picklable as peftlab.sharing.task_lora.TaskRoutedLinear
    globals()["TaskRoutedLinear"] = TaskRoutedLinear
    return TaskRoutedLinear


def __getattr__(name: str):
    """``TaskRoutedLinear`` on first use (unpickling included), without importing peft with peftlab."""
    if name == "TaskRoutedLinear":
        return _routed_class()
    raise AttributeError(name)


def _adapter_config(r: int, lora_alpha: float, lora_dropout: float, target_modules, extra: Mapping[str, Any]):
    from peft import LoraConfig

    if extra.get("use_dora") or extra.get("bias", "none") != "none":
        raise ConfigError(KEY, "task_lora supports plain LoRA (use_dora: false, bias: none); use strategy/sharing=peft for DoRA or LoRA biases")
    try:
        return LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=target_modules, **dict(extra))
    except (TypeError, ValueError) as err:
        raise ConfigError(KEY, f"invalid LoRA settings: {str(err).splitlines()[0]}") from None


class TaskLoraBody(PolicyBody):
    """A frozen backbone with one LoRA adapter per task (and optionally a shared one), routed per row.

    ``forward(*args, task_mask=None, task_ids=None, **inputs)`` returns ``{task: [B, D]}`` (a
    decoder's token logits ``[B, L, V]``, or its ``{"logits", "pooled"}``, the same way):
    row ``b`` of ``features[t]`` is that row through task ``t``'s adapter whenever the row is
    routed to ``t`` — by ``task_ids`` (``[B]``, one task per row), by ``task_mask`` (``[B, T]``
    bool, the batch contract's: every labelled (row, task) pair; one task per row is the mixed
    case, all True the joint case), or, with neither, to every task (inference). Rows not routed
    to ``t`` hold their features through the first task they were routed to (zeros if none):
    they are unlabelled for ``t``, so no loss reads them.

    Args:
        backbone: a module with ``out_dim`` whose forward gives ``[B, D]``; LoRA goes into its
            ``model`` attribute (the Hugging Face model of ``model=hf``) or, lacking one, into it.
        task_names: the tasks, in the order of ``task_mask``'s columns.
        task_configs: ``{task: peft.LoraConfig}``; ``shared_config``: a LoraConfig or None.
    """

    routes_by_task = True  # the module passes the batch's task_mask (peftlab.batch.call_body)

    def __init__(self, backbone: nn.Module, task_names: Sequence[str], task_configs: Mapping[str, Any], shared_config: Any | None = None):
        super().__init__()
        from peft import inject_adapter_in_model

        self.backbone = backbone
        self.task_names = list(task_names)
        self.out_dim = backbone.out_dim
        bad = [t for t in self.task_names if "." in t or t == SHARED or not t]
        if bad:
            raise ConfigError("data.tasks", f"task_lora names one adapter per task; {bad[0]!r} is not usable (no dots, not {SHARED!r})")
        adapted = self.adapted_model
        for p in adapted.parameters():
            p.requires_grad_(False)
        configs = dict(task_configs)
        if shared_config is not None:
            configs = {SHARED: shared_config, **configs}
        with warnings.catch_warnings():  # peft warns that several adapters share the model: that is the point
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            for name, cfg in configs.items():
                try:
                    inject_adapter_in_model(cfg, adapted, adapter_name=name)
                except ValueError as err:
                    names = linear_layer_names(adapted)
                    raise ConfigError(f"{KEY}.target_modules", f"{str(err).splitlines()[0]}; name some of the backbone's linear layers: {names}") from None
        self.routing = Routing(shared=(SHARED,) if shared_config is not None else ())
        self._routed_names = self._route_layers()
        self.adapter_configs = configs
        trainable = [p for n, p in adapted.named_parameters() if ".lora_A." in n or ".lora_B." in n]
        self.record_trainable(trainable)

    # ------------------------------------------------------------------ wiring
    @property
    def adapted_model(self) -> nn.Module:
        """The module the adapters live in (what ``PeftModel.from_pretrained`` gets as base)."""
        return getattr(self.backbone, "model", self.backbone)

    def _route_layers(self) -> list[str]:
        LoraLinear, Routed = _lora_linear_class(), _routed_class()
        from peft.tuners.lora import LoraLayer

        names = []
        for name, module in self.adapted_model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            if type(module) is not LoraLinear or module.lora_variant:
                raise ConfigError(f"{KEY}.target_modules", f"task_lora routes LoRA on nn.Linear layers only; {name} is {type(module).__name__}")
            module.__class__ = Routed  # same object and weights; only forward changes (see the module docstring)
            module.task_routing = self.routing
            names.append(name)
        return names

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared adapter's parameters (every task's loss depends on them); [] without one."""
        return self.task_parameters(SHARED)

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The parameters of adapter ``task`` (a task name, or the shared adapter's)."""
        return [p for n, p in self.named_parameters() if f".lora_A.{task}." in n or f".lora_B.{task}." in n]

    def base_model(self) -> dict[str, Any] | None:
        """Where the frozen weights can be reloaded from (``model=hf``), or None."""
        name = getattr(self.backbone, "name_or_path", None)
        return {"name_or_path": name} if name else None

    def adapter_names(self, task: str) -> list[str]:
        """The adapters task ``task``'s rows go through: the shared one (if any), then its own."""
        return [SHARED, task] if SHARED in self.adapter_configs else [task]

    def routed_layers(self) -> list[tuple[str, nn.Module]]:
        """``(path in adapted_model, layer)`` of every task-routed LoRA layer."""
        modules = dict(self.adapted_model.named_modules())
        return [(path, modules[path]) for path in self._routed_names]

    def adapter_layers(self) -> list[AdapterLayer]:
        """The task-routed LoRA layers, each with the base layer it wraps."""
        return tuner_layers(self)

    def adapter_modules(self) -> list[nn.Module]:
        """Every adapter's own modules (``lora_A.<task>``, ``lora_B.<task>``, ...)."""
        return tuner_modules(self)

    def merge_adapters(self) -> int:
        """Refused: one adapter per task on one base cannot merge into one model."""
        refuse_merged_export()

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What trains, by parameter name: the adapter-only checkpoint of this body."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if id(p) in self._trainable_ids}

    def load_adapter_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load :meth:`adapter_state_dict` (keys must match exactly)."""
        own = dict(self.named_parameters())
        expected = {n for n, p in own.items() if id(p) in self._trainable_ids}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ConfigError("ckpt_path", f"adapter checkpoint does not match the tasks' adapters (missing {missing[:2]}, unexpected {extra[:2]})")
        with torch.no_grad():
            for n, t in state.items():
                own[n].copy_(t)

    # ----------------------------------------------------------------- forward
    def forward(self, *args: torch.Tensor, task_mask: torch.Tensor | None = None, task_ids: torch.Tensor | None = None, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of every task, each row through its own task's adapter (see the class docstring)."""
        first = args[0] if args else next(iter(inputs.values()))
        routes = route_rows(first.shape[0], first.device, self.task_names, task_mask, task_ids)
        self.routing.segments = routes.segments(self.task_names)
        stacked_args, stacked_inputs = routes.stack(inputs, *args)
        return routes.per_task(self.backbone(*stacked_args, **stacked_inputs), self.task_names)


class TaskLoRA(SharingPolicy):
    """``strategy/sharing=task_lora``: one LoRA per task on a frozen backbone, routed per row.

    Args:
        r, lora_alpha, lora_dropout, target_modules: each task adapter's peft LoRA settings
            (``target_modules: null``: the architecture's attention projections, query/value for BERT,
            q_lin/v_lin for DistilBERT, see :mod:`~peftlab.sharing.lora_targets`;
            every ``nn.Linear`` of a network without a Hugging Face config, such as the built-in MLP).
        ranks: optional ``{task: r}`` overriding ``r`` per task (alpha scales with it: alpha/r stays).
        shared_r, shared_alpha: a LoRA shared by all tasks under the per-task ones (``shared_r: 0``: none;
            ``shared_alpha: null``: 2 × shared_r).
        lora_kwargs: further :class:`peft.LoraConfig` fields (plain LoRA only: no DoRA, no biases).
    """

    name = "task_lora"

    def __init__(
        self,
        r: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        target_modules: Sequence[str] | str | None = None,
        ranks: Mapping[str, int] | None = None,
        shared_r: int = 0,
        shared_alpha: float | None = None,
        **lora_kwargs: Any,
    ):
        check_int(f"{KEY}.r", r, minimum=1)
        check_int(f"{KEY}.shared_r", shared_r, minimum=0)
        self.r, self.lora_alpha, self.lora_dropout = r, lora_alpha, lora_dropout
        self.target_modules = target_modules if target_modules is None or isinstance(target_modules, str) else list(target_modules)
        self.ranks = dict(ranks or {})
        self.shared_r, self.shared_alpha = shared_r, shared_alpha
        self.lora_kwargs = dict(lora_kwargs)

    def build(self, make_backbone: Callable[[], nn.Module], task_names: Sequence[str]) -> TaskLoraBody:
        """A frozen backbone with one adapter per task of ``task_names``."""
        unknown = [t for t in self.ranks if t not in task_names]
        if unknown:
            raise ConfigError(f"{KEY}.ranks", f"names task {unknown[0]!r}, which the data does not have; tasks are: {', '.join(task_names)}")
        backbone = make_backbone()
        targets = self.target_modules
        adapted = getattr(backbone, "model", backbone)
        if targets is None:  # the architecture's attention projections (every linear layer of a plain network)
            targets = default_lora_targets(adapted)
        configs = {}
        for task in task_names:
            r = int(self.ranks.get(task, self.r))
            configs[task] = _adapter_config(r, self.lora_alpha * r / self.r, self.lora_dropout, targets, self.lora_kwargs)
        shared = None
        if self.shared_r:
            alpha = self.shared_alpha if self.shared_alpha is not None else 2 * self.shared_r
            shared = _adapter_config(self.shared_r, alpha, self.lora_dropout, targets, self.lora_kwargs)
        return TaskLoraBody(backbone, task_names, configs, shared)
