"""The training state of a stack, and each member's share of it in a single run's layout.

A :class:`StackState` holds the stacked model, one Adam over all of its parameters, the
members' controllers and one random generator per member. Adam is elementwise, so one fused
update over stacked tensors gives every member exactly the update its own optimiser would
(weight decay included: it is added to each element's gradient); the step count is shared,
and equal to each member's, because all live members step together.

:meth:`StackState.member_state_dict` is what :class:`~vaesweep.training.trainer.TrainState`
would save for member k's single run (model, optimizer, control, generator, epoch, step, with
the single run's keys and shapes), so a member's checkpoint resumes as a single run or back
into a stack (:meth:`StackState.load_member_state_dict`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from vaesweep.control.stacked import StackedControl
from vaesweep.model.stacked import StackedVAE
from vaesweep.model.vae import VAE
from vaesweep.training.adam import Optimizer

View = Callable[[torch.Tensor], torch.Tensor]


def member_sources(model: StackedVAE, k: int) -> list[tuple[torch.Tensor, View]]:
    """Member k's parameters in its single model's ``parameters()`` order, each with the
    view that maps a stacked tensor of its shape (weights, Adam moments) to member k's part."""
    return [(t, view) for _, t, view in model.member_slots(k) if isinstance(t, torch.nn.Parameter)]


def _adam_state(optimizer: Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """The optimiser's state of ``p``, created (zeros, step 0) if it has none yet."""
    state: dict[torch.Tensor, dict[str, torch.Tensor]] = optimizer.state  # type: ignore[attr-defined]
    if p not in state:
        state[p] = {
            "step": torch.zeros((), dtype=torch.float32, device=p.device),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }
    return state[p]


@dataclass
class MemberState:
    """Member k seen as a single run's state (what checkpoint hooks call ``state_dict`` on)."""

    stack: StackState
    k: int

    @property
    def model(self) -> VAE:
        """A single :class:`VAE` with member k's current weights (:meth:`StackedVAE.member_view`)."""
        return self.stack.model.member_view(self.k)

    def state_dict(self) -> dict[str, Any]:
        return self.stack.member_state_dict(self.k)


@dataclass
class StackState:
    model: StackedVAE
    optimizer: Optimizer
    control: StackedControl
    generators: list[torch.Generator]
    epoch: int = 0
    step: int = 0
    #: Members still training; a diverged member is frozen (see :class:`MemberFreezer`).
    alive: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.alive:
            self.alive = [True] * self.model.k

    def member(self, k: int) -> MemberState:
        return MemberState(self, k)

    def member_optimizer_state(self, k: int) -> dict[str, Any]:
        """``torch.optim.Adam.state_dict()`` of member k's own optimiser."""
        group = {key: v for key, v in self.optimizer.param_groups[0].items() if key != "params"}
        sources = member_sources(self.model, k)
        group["params"] = list(range(len(sources)))
        held: dict[torch.Tensor, dict[str, torch.Tensor]] = self.optimizer.state  # type: ignore[attr-defined]
        state = {}
        for i, (p, view) in enumerate(sources):
            if p in held:
                s = held[p]
                state[i] = {
                    "step": s["step"].clone(),
                    "exp_avg": view(s["exp_avg"]).clone(),
                    "exp_avg_sq": view(s["exp_avg_sq"]).clone(),
                }
        return {"state": state, "param_groups": [group]}

    def member_state_dict(self, k: int) -> dict[str, Any]:
        """Member k's :meth:`TrainState.state_dict` (copies, safe to save in the background)."""
        return {
            "model": self.model.member_state_dict(k),
            "optimizer": self.member_optimizer_state(k),
            "control": self.control.controls[k].state_dict(),
            "generator": self.generators[k].get_state(),
            "epoch": self.epoch,
            "step": self.step,
        }

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, Any]) -> None:
        """Continue member k from a single run's (or a member's) checkpoint state.

        Members of one stack step together, so every loaded member must be at the same epoch.
        """
        self.model.load_member_state_dict(k, state["model"])
        saved = state["optimizer"]
        sources = member_sources(self.model, k)
        if len(saved["param_groups"][0]["params"]) != len(sources):
            raise ValueError("optimizer state does not match the model's parameters")
        for i, (p, view) in enumerate(sources):
            entry = saved["state"].get(i)
            if entry is None:
                continue
            s = _adam_state(self.optimizer, p)
            s["step"].fill_(float(entry["step"]))
            view(s["exp_avg"]).copy_(entry["exp_avg"])
            view(s["exp_avg_sq"]).copy_(entry["exp_avg_sq"])
        self.control.controls[k].load_state_dict(state["control"])
        gen = state["generator"]
        self.generators[k].set_state(gen.cpu() if hasattr(gen, "cpu") else gen)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


class MemberFreezer:
    """Keeps diverged members' slices (weights and Adam moments) where they were.

    A member whose loss turned non-finite contributes nothing to the stack's loss, but the
    fused Adam step still moves every element (momentum); :meth:`restore` after each step puts
    the frozen members' slices back, so they stop updating while the others continue.
    """

    def __init__(self) -> None:
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def freeze(self, state: StackState, k: int) -> None:
        held: dict[torch.Tensor, dict[str, torch.Tensor]] = state.optimizer.state  # type: ignore[attr-defined]
        for p, view in member_sources(state.model, k):
            targets = [view(p)]
            if p in held:
                targets += [view(held[p]["exp_avg"]), view(held[p]["exp_avg_sq"])]
            self._saved += [(t, t.clone()) for t in targets]

    @torch.no_grad()
    def restore(self) -> None:
        for target, value in self._saved:
            target.copy_(value)


@torch.no_grad()
def clip_member_grads(model: StackedVAE, max_norm: float) -> torch.Tensor:
    """Clip each member's global gradient norm to ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does for a single run; returns the (K,) norms."""
    stacked = [p for p in model.stacked_parameters() if p.grad is not None]
    sq = torch.zeros(model.k, dtype=torch.float32, device=stacked[0].device)
    for p in stacked:
        sq += p.grad.flatten(1).pow(2).sum(1)  # type: ignore[union-attr]
    own = [[p for p in lik.parameters() if p.grad is not None] for lik in model.likelihoods]
    for k, params in enumerate(own):
        for p in params:
            sq[k] += p.grad.pow(2).sum()  # type: ignore[union-attr]
    norms = sq.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in stacked:
        p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))  # type: ignore[union-attr]
    for k, params in enumerate(own):
        for p in params:
            p.grad.mul_(coef[k])  # type: ignore[union-attr]
    return norms
