"""Closed-loop KL control: GECO's Lagrange multiplier and ControlVAE's PI controller.

Their state is a Python number on the CPU and a 0-d tensor on an accelerator, where a step
then never reads the batch back (:mod:`vaesweep.control.state`); the properties below read it
as numbers (for the log, checkpoints and tests).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaesweep.config import PIKL, GecoKL
from vaesweep.control import state
from vaesweep.control.base import KLControl, RunShape
from vaesweep.control.state import Scalar
from vaesweep.objective.terms import LossTerms


class Geco(KLControl):
    """GECO (Rezende & Viola 2018, algorithm 1) with the relative constraint MSE / kappa^2 - 1.

    Objective ``KL + lambda * C`` (gradients from the current batch); after each step the
    moving average ``C_bar = alpha * C_bar + (1 - alpha) * C`` updates
    ``log lambda += nu * C_bar``, clamped to [log lambda_min, log lambda_max]. The equivalent
    weight in the SSE convention is ``D * kappa^2 / lambda``: lambda rises (beta_t falls) while
    reconstructions miss the tolerance. The objective does not depend on
    ``loss.recon_reduction``, so ``beta_t`` is reported in the run's reduction convention
    (times ``shape.recon_scale``) and the logged ``beta_sum = beta_t / recon_scale`` is
    ``D * kappa^2 / lambda`` either way.
    """

    method = "geco"

    def __init__(self, cfg: GecoKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.cfg = cfg
        self.scale = shape.n_pixels * cfg.kappa**2
        # lambda_init None: start where beta_t equals the user's beta (in their reduction).
        start = (
            cfg.lambda_init
            if cfg.lambda_init is not None
            else self.scale * shape.recon_scale / max(beta, 1e-12)
        )
        low, high = self._bounds()
        self._log_lambda: Scalar = min(max(math.log(start), low), high)
        self._c_bar: Scalar | None = None

    def _bounds(self) -> tuple[float, float]:
        """The clamp of log lambda: [log lambda_min, log lambda_max]."""
        return math.log(self.cfg.lambda_min), math.log(self.cfg.lambda_max)

    @property
    def log_lambda(self) -> float:
        return float(self._log_lambda)

    @property
    def c_bar(self) -> float | None:
        return None if self._c_bar is None else float(self._c_bar)

    def constraint(self, terms: LossTerms) -> torch.Tensor:
        """C per batch: mean per-pixel squared error over kappa^2, minus one."""
        return terms.sse.mean() / self.scale - 1.0

    def beta_t(self, step: int) -> float:
        return self.shape.recon_scale * self.scale / math.exp(self.log_lambda)

    def objective(self, terms: LossTerms, step: int) -> torch.Tensor:
        c = self.constraint(terms)
        self._log_lambda = state.place(self._log_lambda, c)
        return terms.kl.mean() + state.factor(state.exp(self._log_lambda), c) * c

    def observe(self, terms: LossTerms, step: int) -> None:
        c = state.observed(self.constraint(terms))
        a = self.cfg.alpha
        if self._c_bar is None:
            self._c_bar = c
        else:
            self._c_bar = a * state.place(self._c_bar, c) + (1 - a) * c
        log_lambda = state.place(self._log_lambda, c) + self.cfg.nu * self._c_bar
        self._log_lambda = state.clamp(log_lambda, *self._bounds())

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {
            "geco_lambda": math.exp(self.log_lambda),
            "geco_constraint": math.nan if self.c_bar is None else self.c_bar,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "c_bar": self.c_bar}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self._log_lambda = float(saved["log_lambda"])
        self._c_bar = None if saved["c_bar"] is None else float(saved["c_bar"])


class PIController(KLControl):
    """ControlVAE's non-linear PI controller (Shao et al. 2020, eq. 4 and algorithm 1).

    With error ``e_t = target - KL_t``: ``beta = kp / (1 + exp(e_t)) + I_t + beta_min`` with
    ``I_t = I_{t-1} - ki * e_t``, clamped to [beta_min, beta_max]. Anti-windup: the integral
    moves only as far as puts the output on a bound, so it stays put while the output is
    saturated and beta leaves the bound as soon as the error changes sign. (Refusing the
    whole step instead, as before, could stall beta up to ``ki * |e|`` short of its bound.)
    The new beta applies from the next step.
    """

    method = "pi"

    def __init__(self, cfg: PIKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.cfg = cfg
        current = min(max(beta, cfg.beta_min), cfg.beta_max)
        self._current: Scalar = current
        # Start the integral where the output equals the starting beta (bumpless start).
        self._integral: Scalar = current - cfg.beta_min
        self._last_error: Scalar = math.nan

    @property
    def current(self) -> float:
        return float(self._current)

    @property
    def integral(self) -> float:
        return float(self._integral)

    @property
    def last_error(self) -> float:
        return float(self._last_error)

    def beta_t(self, step: int) -> float:
        return self.current

    def kl_penalty(self, terms: LossTerms, step: int) -> torch.Tensor:
        kl = terms.kl.mean()
        self._current = state.place(self._current, kl)
        return state.factor(self._current, kl) * kl

    def update(self, kl: Scalar) -> float:
        """One controller step for an observed KL (nats); returns the new beta."""
        self._step(kl)
        return self.current

    def _step(self, kl: Scalar) -> None:
        cfg = self.cfg
        e = cfg.target - kl
        p = cfg.kp / (1.0 + state.exp(state.clamp(e, -math.inf, 700.0)))
        # The integral values that keep p + I + beta_min within [beta_min, beta_max].
        low, high = -p, cfg.beta_max - cfg.beta_min - p
        integral = state.place(self._integral, e) - cfg.ki * e
        self._integral = state.clamp(integral, low, high)
        output = p + self._integral + cfg.beta_min
        self._current = state.clamp(output, cfg.beta_min, cfg.beta_max)
        self._last_error = e

    def observe(self, terms: LossTerms, step: int) -> None:
        self._step(state.observed(terms.kl.mean()))

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {"kl_target": self.cfg.target, "pi_error": self.last_error}

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "integral": self.integral, "last_error": self.last_error}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self._current = float(saved["current"])
        self._integral = float(saved["integral"])
        self._last_error = float(saved["last_error"])
