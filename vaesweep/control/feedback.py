"""Closed-loop KL control: GECO's Lagrange multiplier and ControlVAE's PI controller.

Their state lives on the training device (:func:`~vaesweep.control.base.state_value`): a step
updates it with tensor operations and never reads the batch back; the properties below read it
as numbers (for the log, checkpoints and tests).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaesweep.config import PIKL, GecoKL
from vaesweep.control.base import KLControl, RunShape, state_value
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
        self._log_lambda = torch.tensor(min(max(math.log(start), low), high), dtype=torch.float64)
        self._c_bar: torch.Tensor | None = None

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
        self._log_lambda = state_value(self._log_lambda, c)
        return terms.kl.mean() + self._log_lambda.exp().to(c.dtype) * c

    def observe(self, terms: LossTerms, step: int) -> None:
        c = self.constraint(terms).detach()
        c = state_value(c, c)
        a = self.cfg.alpha
        self._c_bar = c if self._c_bar is None else a * self._c_bar + (1 - a) * c
        log_lambda = state_value(self._log_lambda, c) + self.cfg.nu * self._c_bar
        self._log_lambda = log_lambda.clamp(*self._bounds())

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {
            "geco_lambda": math.exp(self.log_lambda),
            "geco_constraint": math.nan if self.c_bar is None else self.c_bar,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "c_bar": self.c_bar}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._log_lambda = torch.tensor(float(state["log_lambda"]), dtype=torch.float64)
        c_bar = state["c_bar"]
        self._c_bar = None if c_bar is None else torch.tensor(float(c_bar), dtype=torch.float64)


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
        self._current = torch.tensor(current, dtype=torch.float64)
        # Start the integral where the output equals the starting beta (bumpless start).
        self._integral = torch.tensor(current - cfg.beta_min, dtype=torch.float64)
        self._last_error = torch.tensor(math.nan, dtype=torch.float64)

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
        self._current = state_value(self._current, kl)
        return self._current.to(kl.dtype) * kl

    def update(self, kl: float | torch.Tensor) -> float:
        """One controller step for an observed KL (nats); returns the new beta."""
        self._step(torch.as_tensor(kl, dtype=torch.float64))
        return self.current

    def _step(self, kl: torch.Tensor) -> None:
        cfg = self.cfg
        e = cfg.target - state_value(kl, kl)
        p = cfg.kp / (1.0 + e.clamp(max=700.0).exp())
        # The integral values that keep p + I + beta_min within [beta_min, beta_max].
        low, high = -p, cfg.beta_max - cfg.beta_min - p
        integral = state_value(self._integral, e) - cfg.ki * e
        self._integral = torch.minimum(torch.maximum(integral, low), high)
        output = p + self._integral + cfg.beta_min
        self._current = output.clamp(cfg.beta_min, cfg.beta_max)
        self._last_error = e

    def observe(self, terms: LossTerms, step: int) -> None:
        self._step(terms.kl.mean().detach())

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        return {"kl_target": self.cfg.target, "pi_error": self.last_error}

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "integral": self.integral, "last_error": self.last_error}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("current", "integral", "last_error"):
            setattr(self, f"_{key}", torch.tensor(float(state[key]), dtype=torch.float64))
