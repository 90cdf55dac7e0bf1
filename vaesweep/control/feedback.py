"""Closed-loop KL control: GECO's Lagrange multiplier and ControlVAE's PI controller."""

from __future__ import annotations

import math
from typing import Any

import torch

from vaesweep.config import PIKL, GecoKL
from vaesweep.control.base import KLControl, RunShape
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
        self.log_lambda = self._clamp(math.log(start))
        self.c_bar: float | None = None

    def _clamp(self, log_lam: float) -> float:
        return min(max(log_lam, math.log(self.cfg.lambda_min)), math.log(self.cfg.lambda_max))

    def constraint(self, terms: LossTerms) -> torch.Tensor:
        """C per batch: mean per-pixel squared error over kappa^2, minus one."""
        return terms.sse.mean() / self.scale - 1.0

    def beta_t(self, step: int) -> float:
        return self.shape.recon_scale * self.scale / math.exp(self.log_lambda)

    def objective(self, terms: LossTerms, step: int) -> torch.Tensor:
        return terms.kl.mean() + math.exp(self.log_lambda) * self.constraint(terms)

    def observe(self, terms: LossTerms, step: int) -> None:
        c = float(self.constraint(terms).detach())
        a = self.cfg.alpha
        self.c_bar = c if self.c_bar is None else a * self.c_bar + (1 - a) * c
        self.log_lambda = self._clamp(self.log_lambda + self.cfg.nu * self.c_bar)

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {
            "geco_lambda": math.exp(self.log_lambda),
            "geco_constraint": math.nan if self.c_bar is None else self.c_bar,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "c_bar": self.c_bar}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_lambda = float(state["log_lambda"])
        self.c_bar = None if state["c_bar"] is None else float(state["c_bar"])


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
        self.current = min(max(beta, cfg.beta_min), cfg.beta_max)
        # Start the integral where the output equals the starting beta (bumpless start).
        self.integral = self.current - cfg.beta_min
        self.last_error = math.nan

    def beta_t(self, step: int) -> float:
        return self.current

    def update(self, kl: float) -> float:
        """One controller step for an observed KL (nats); returns the new beta."""
        cfg = self.cfg
        e = cfg.target - kl
        p = cfg.kp / (1.0 + math.exp(min(e, 700.0)))
        # The integral values that keep p + I + beta_min within [beta_min, beta_max].
        low, high = -p, cfg.beta_max - cfg.beta_min - p
        self.integral = min(max(self.integral - cfg.ki * e, low), high)
        self.current = min(max(p + self.integral + cfg.beta_min, cfg.beta_min), cfg.beta_max)
        self.last_error = e
        return self.current

    def observe(self, terms: LossTerms, step: int) -> None:
        self.update(float(terms.kl.mean().detach()))

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {"kl_target": self.cfg.target, "pi_error": self.last_error}

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "integral": self.integral, "last_error": self.last_error}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state["current"])
        self.integral = float(state["integral"])
        self.last_error = float(state["last_error"])
