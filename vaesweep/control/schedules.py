"""Open-loop KL schedules: linear warm-up, cyclical annealing and capacity annealing."""

from __future__ import annotations

import math

import torch

from vaesweep.config import CapacityKL, CyclicalKL, WarmupKL
from vaesweep.control.base import KLControl, RunShape
from vaesweep.objective.terms import LossTerms


class Warmup(KLControl):
    """``beta_t = beta * min(1, t / T)``, T = ``kl.epochs`` of steps (Sonderby et al. 2016)."""

    method = "warmup"

    def __init__(self, cfg: WarmupKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.warm_steps = shape.steps(cfg.epochs)

    def beta_t(self, step: int) -> float:
        return self.beta * min(1.0, step / self.warm_steps)


class Cyclical(KLControl):
    """Cyclical annealing (Fu et al. 2019, eq. 6) with a linear ramp.

    With T cycling steps, M cycles and ratio R: ``tau = mod(t, ceil(T / M)) / (T / M)`` and
    ``beta_t = beta * min(1, tau / R)``; after T steps (the ``kl.tail``) ``beta_t = beta``.
    """

    method = "cyclical"

    def __init__(self, cfg: CyclicalKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        tail = round(cfg.tail * shape.steps_per_epoch)
        self.cycle_steps = max(1, shape.total_steps - tail)
        self.period = self.cycle_steps / cfg.cycles
        self.ratio = cfg.ratio

    def beta_t(self, step: int) -> float:
        if step >= self.cycle_steps:
            return self.beta
        tau = (step % math.ceil(self.period)) / self.period
        return self.beta * min(1.0, tau / self.ratio)


class Capacity(KLControl):
    """Capacity annealing (Burgess et al. 2018): ``recon + gamma * |KL - C_t|``.

    ``C_t = c_max * min(1, t / T)``. The logged ``beta_t`` is the local weight
    ``gamma`` while KL > C_t and 0 otherwise (below target the term pushes the KL up, which no
    non-negative beta does); ``kl_target`` logs C_t.
    """

    method = "capacity"

    def __init__(self, cfg: CapacityKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.gamma = cfg.gamma
        self.c_max = cfg.c_max
        self.ramp_steps = shape.steps(cfg.ramp_epochs)
        self._last_kl = math.inf

    def capacity(self, step: int) -> float:
        return self.c_max * min(1.0, step / self.ramp_steps)

    def beta_t(self, step: int) -> float:
        return self.gamma if self._last_kl > self.capacity(step) else 0.0

    def kl_penalty(self, terms: LossTerms, step: int) -> torch.Tensor:
        return self.gamma * (terms.kl.mean() - self.capacity(step)).abs()

    def observe(self, terms: LossTerms, step: int) -> None:
        self._last_kl = float(terms.kl.mean().detach())
        self._step = step

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {"kl_target": self.capacity(getattr(self, "_step", 0))}
