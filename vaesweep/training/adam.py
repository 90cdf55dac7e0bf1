"""Adam (Kingma & Ba 2015) on torch's fused kernel, without ``torch.optim``'s start-up cost.

Every ``torch.optim`` optimiser imports ``torch._dynamo`` on first use (its methods are
wrapped to stay out of ``torch.compile`` graphs), which costs about 1.5 s of CPU per fresh
process here: a fifth of a default digits run, paid again by every parallel worker.
:class:`FusedAdam` calls the very kernel ``torch.optim.Adam(fused=True)`` calls
(``aten::_fused_adam_``), after the same ``step += 1``, so its updates are bitwise identical
(tests/test_adam.py), and its ``state_dict`` has ``torch.optim.Adam``'s layout, so
checkpoints load into either.

:func:`make_adam` picks it where this torch has the fused kernel for the device, and falls
back to ``torch.optim.Adam`` elsewhere (e.g. CPU kernels of torch < 2.4).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch

#: Hyper-parameters stored per group, with torch.optim.Adam's names and defaults.
_GROUP_DEFAULTS: dict[str, Any] = {
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": True,
    "decoupled_weight_decay": False,
}


class Optimizer(Protocol):
    """What the trainer needs of an optimiser (``FusedAdam`` and ``torch.optim.Adam`` both)."""

    param_groups: list[dict[str, Any]]

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


class FusedAdam:
    """Adam with L2 weight decay (``torch.optim.Adam`` semantics, ``fused=True``).

    One parameter group; per parameter the state is ``step`` (float32 scalar on the
    parameter's device), ``exp_avg`` and ``exp_avg_sq`` (the first and second moment
    estimates, shaped like the parameter).
    """

    #: Like ``torch.optim.Adam(fused=True)``: ``torch.amp.GradScaler`` hands the step its scale
    #: and its inf flag (the ``grad_scale`` and ``found_inf`` attributes, set for the call) and
    #: the kernel skips the update on the device, instead of the scaler reading the flag back
    #: to the host to decide whether to step (an fp16 step on a GPU would wait for that).
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("FusedAdam got an empty parameter list")
        group = {**_GROUP_DEFAULTS, "lr": lr, "betas": tuple(betas), "eps": eps}
        group.update(weight_decay=weight_decay, params=params)
        self.param_groups: list[dict[str, Any]] = [group]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @property
    def _params(self) -> list[torch.nn.Parameter]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def _state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:
            state = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
            self.state[p] = state
        return state

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        for p in self._params:
            if p.grad is not None:
                params.append(p)
                grads.append(p.grad)
        if not params:
            return
        states = [self._state_of(p) for p in params]
        steps = [s["step"] for s in states]
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        # The same calls as torch.optim.adam._fused_adam (parameters share one device).
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            amsgrad=False,
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            weight_decay=float(group["weight_decay"]),
            eps=float(group["eps"]),
            maximize=False,
            grad_scale=grad_scale,
            found_inf=found_inf,
        )
        if found_inf is not None:  # a skipped step does not count
            torch._foreach_sub_(steps, [found_inf] * len(steps))

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict`` layout: parameters by index."""
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self._params)))
        state = {i: dict(self.state[p]) for i, p in enumerate(self._params) if p in self.state}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of ``torch.optim.Adam`` (one group)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self._params):
            raise ValueError("optimizer state does not match the model's parameters")
        saved = groups[0]
        for key in ("lr", "betas", "eps", "weight_decay"):
            self.param_groups[0][key] = saved[key]
        if saved.get("amsgrad") or saved.get("maximize") or saved.get("decoupled_weight_decay"):
            raise ValueError("optimizer state is of another Adam variant (amsgrad/maximize/AdamW)")
        self.state = {}
        for index, p in enumerate(self._params):
            entry = state_dict["state"].get(index)
            if entry is None:
                continue
            self.state[p] = {
                "step": torch.as_tensor(entry["step"], dtype=torch.float32).to(p.device).clone(),
                "exp_avg": _like(p, entry["exp_avg"]),
                "exp_avg_sq": _like(p, entry["exp_avg_sq"]),
            }


def _like(p: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """A copy of a saved moment in ``p``'s device, dtype and memory layout: the fused kernel
    walks a parameter, its gradient and its moments element by element in memory order, and
    a checkpoint may come from a model in another layout (``model.layout``)."""
    return torch.empty_like(p, memory_format=torch.preserve_format).copy_(saved)


def fused_kernel_available(device: torch.device) -> bool:
    """Whether ``aten::_fused_adam_`` runs on ``device`` for float32 (one step of one element)."""
    if not hasattr(torch, "_fused_adam_"):
        return False
    try:
        p = torch.nn.Parameter(torch.zeros(1, device=device))
        p.grad = torch.ones_like(p)
        FusedAdam([p], lr=1e-3).step()
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True


def make_adam(model: torch.nn.Module, lr: float, weight_decay: float) -> Optimizer:
    """Adam over the model's parameters: :class:`FusedAdam`, else ``torch.optim.Adam``.

    For small models the optimiser step is a large share of a training step, and the fused
    kernel measured about 2.8x faster than the per-tensor loop on 2 CPU cores.
    """
    params = list(model.parameters())
    devices = {p.device for p in params}
    # The fused kernel takes one device and dtype per call; mixed models use torch.optim.
    if (
        len(devices) == 1
        and {p.dtype for p in params} == {torch.float32}
        and fused_kernel_available(next(iter(devices)))
    ):
        return FusedAdam(params, lr=lr, weight_decay=weight_decay)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
