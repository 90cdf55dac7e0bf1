"""Open-loop KL schedules: linear warm-up, cyclical annealing and capacity annealing."""

from __future__ import annotations

import math
from typing import Any

import torch

from vaesweep.config import CapacityKL, CyclicalKL, WarmupKL
from vaesweep.control import state
from vaesweep.control.base import KLControl, RunShape
from vaesweep.control.state import Scalar
from vaesweep.objective.terms import LossTerms

#: Training steps over which capacity control averages the KL before calling it above target.
KL_EMA_STEPS = 20
#: "At the target": within this share of C_t plus :data:`AT_TARGET_ABS` nats above it.
AT_TARGET_REL = 0.05
AT_TARGET_ABS = 0.1


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

    ``C_t = c_max * min(1, t / T)``. The term is no fixed weight on the KL: above the target
    it pulls the KL down with slope ``gamma``, below it pushes the KL up, and at the target
    (where it settles) the weight in effect is the slope of the model's rate-distortion curve
    at R = C_t (Alemi et al. 2018), which this method never measures. So the logged ``beta_t``
    is ``gamma`` only while the running KL (an exponential mean over about
    :data:`KL_EMA_STEPS` training steps) is clearly above the target, by more than
    :data:`AT_TARGET_REL` of it plus :data:`AT_TARGET_ABS` nats, and NaN otherwise: no
    effective beta, and no calibration verdict, is read off a run held at its capacity.
    ``kl_target`` logs the C_t that the next objective uses (the value the epoch's
    validation row is scored with).
    """

    method = "capacity"

    def __init__(self, cfg: CapacityKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.gamma = cfg.gamma
        self.c_max = cfg.c_max
        self.ramp_steps = shape.steps(cfg.ramp_epochs)
        #: Running KL (:mod:`vaesweep.control.state`); None before the first step.
        self._kl_ema: Scalar | None = None
        self._next_step = 0

    def capacity(self, step: int) -> float:
        return self.c_max * min(1.0, step / self.ramp_steps)

    def beta_t(self, step: int) -> float:
        target = self.capacity(step)
        kl_ema = math.inf if self._kl_ema is None else float(self._kl_ema)
        above = kl_ema > target * (1.0 + AT_TARGET_REL) + AT_TARGET_ABS
        return self.gamma if above else math.nan

    def kl_weighted(self, step: int) -> bool:
        # beta_t is NaN at the target, yet |KL - C_t| always weighs the KL by gamma.
        return self.gamma > 0

    def kl_penalty(self, terms: LossTerms, step: int) -> torch.Tensor:
        return self.gamma * (terms.kl.mean() - self.capacity(step)).abs()

    def observe(self, terms: LossTerms, step: int) -> None:
        kl = state.observed(terms.kl.mean())
        rate = 1.0 / KL_EMA_STEPS
        if self._kl_ema is None:
            self._kl_ema = kl
        else:
            self._kl_ema = (1 - rate) * state.place(self._kl_ema, kl) + rate * kl
        self._next_step = step + 1

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {"kl_target": self.capacity(self._next_step)}

    def state_dict(self) -> dict[str, Any]:
        kl_ema = math.inf if self._kl_ema is None else float(self._kl_ema)
        return {"kl_ema": kl_ema, "next_step": self._next_step}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        kl_ema = float(saved.get("kl_ema", math.inf))
        self._kl_ema = None if math.isinf(kl_ema) else kl_ema
        self._next_step = int(saved.get("next_step", 0))
