"""The non-Gaussian decoders (Bernoulli, continuous Bernoulli, Laplace, discretised logistic)
and the registry that builds any likelihood from ``loss.likelihood``.

Conventions (``recon``, ``nll`` in nats per image, ``mean``, ``sigma2_eff``):
:mod:`vaesweep.objective.likelihood_base`. Gaussian decoders:
:mod:`vaesweep.objective.gaussian_likelihoods`.

References: Kingma & Welling 2014 (Bernoulli decoder); Loaiza-Ganem & Cunningham 2019
(continuous Bernoulli); Salimans et al. 2017 (discretised logistic).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vaesweep.config import LossConfig
from vaesweep.objective.gaussian_likelihoods import (
    FixedGaussian,
    LearnedGaussian,
    OptimalGaussian,
    SquaredError,
)
from vaesweep.objective.likelihood_base import Likelihood, flat_sum, softclip_min

#: Half-width of one 8-bit grey level on the [0, 1] scale (levels k / 255).
HALF_BIN = 0.5 / 255.0


class Bernoulli(Likelihood):
    """Bernoulli with logits; a proper likelihood only for binary pixels (``data.binarize``)."""

    name = "bernoulli"

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(F.binary_cross_entropy_with_logits(params, x, reduction="none"))


#: Below this |logit| the continuous Bernoulli uses its Taylor series (cancellation above it is
#: harmless in float32: the truncation error is under 1e-9 nats per pixel at the switch).
CB_SERIES_BELOW = 0.1


def cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(eta) of the continuous Bernoulli, elementwise, computed in the logit eta.

    C(eta) = eta / tanh(eta / 2) (Loaiza-Ganem & Cunningham 2019, eq. 7 with lambda =
    sigmoid(eta)); it grows like |eta| without bound. For |eta| >= :data:`CB_SERIES_BELOW`:
    log|eta| - log tanh(|eta| / 2), with log tanh(a) = log1p(-e^-2a) - log1p(e^-2a), finite
    for any finite eta; below: log 2 + eta^2 / 12 - 7 eta^4 / 1440. The far branch is fed a
    value inside its range so neither branch produces NaN gradients through ``where``.
    """
    a = logits.abs()
    small = a < CB_SERIES_BELOW
    far = torch.where(small, torch.full_like(a, CB_SERIES_BELOW), a)
    e = torch.exp(-far)  # e^{-2 (far / 2)}
    direct = torch.log(far) - (torch.log1p(-e) - torch.log1p(e))
    sq = logits * logits
    series = math.log(2.0) + sq / 12.0 - 7.0 * sq * sq / 1440.0
    return torch.where(small, series, direct)


def cb_mean(logits: torch.Tensor) -> torch.Tensor:
    """Mean of the continuous Bernoulli in the logit: 1 / (1 - e^-eta) - 1 / eta.

    With a = |eta|, q = -1 / expm1(-a) = 1 / (1 - e^-a) stays finite (no overflow for any a), and
    1 / (1 - e^-eta) is q for eta > 0 and 1 - q for eta < 0; below :data:`CB_SERIES_BELOW` the
    series 1/2 + eta/12 - eta^3/720.
    """
    small = logits.abs() < CB_SERIES_BELOW
    safe = torch.where(small, torch.full_like(logits, CB_SERIES_BELOW), logits)
    q = -1.0 / torch.expm1(-safe.abs())
    direct = torch.where(safe > 0, q, 1.0 - q) - 1.0 / safe
    series = 0.5 + logits / 12.0 - logits**3 / 720.0
    return torch.where(small, series, direct)


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): a proper density on [0, 1].

    Per pixel, -log p(x | eta) = softplus(eta) - x eta - log C(eta), computed in the logit so
    the density stays normalised for saturated logits (``torch.distributions``' version clamps
    the probability to [eps, 1 - eps] in float32, which freezes C and the mean past |eta| ~ 16).
    """

    name = "cbernoulli"

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum(F.softplus(params) - x * params - cb_log_norm(params))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return cb_mean(params)


class Laplace(Likelihood):
    """Laplace(x_hat, b) with fixed scale b = ``loss.sigma``: |x - x_hat| / b + ln 2b per pixel."""

    name = "laplace"

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        per_pixel = (self.mean(params) - x).abs() / self.scale + math.log(2 * self.scale)
        return flat_sum(per_pixel)

    def extra_stats(self) -> dict[str, float]:
        return {"decoder_sigma": self.scale}


class DiscretizedLogistic(Likelihood):
    """Discretised logistic over the 256 grey levels k/255 (Salimans et al. 2017).

    P(x) = sigmoid((x + h - mu) / s) - sigmoid((x - h - mu) / s) with h half a grey level; the
    edge levels take the whole tail. One learned log-scale per channel. The result is a
    probability of 8-bit pixels, so bits per dimension need no dequantisation offset.
    """

    name = "dlogistic"
    discrete = True

    def __init__(self, channels: int, sigma: float) -> None:
        super().__init__()
        # A logistic with scale s has std s * pi / sqrt(3); start at the requested sigma.
        init = math.log(min(sigma, 0.5) * math.sqrt(3) / math.pi)
        self.log_scale = nn.Parameter(torch.full((1, channels, 1, 1), init))

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = self.mean(params)
        log_s = softclip_min(self.log_scale, -7.0)
        inv_s = torch.exp(-log_s)
        plus = (x - mu + HALF_BIN) * inv_s
        minus = (x - mu - HALF_BIN) * inv_s
        log_cdf_plus = F.logsigmoid(plus)  # log P(X <= x + h), used at the black edge
        log_one_minus_cdf_min = -F.softplus(minus)  # log P(X > x - h), used at the white edge
        # Interior bins: P = sigmoid(plus) - sigmoid(minus) = sigmoid(-minus) - sigmoid(-plus).
        # Above the mean both CDFs are ~1 and the first form cancels (it used to floor P at
        # 1e-12, with no gradient), so there take the survival-function form; then
        # log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log(1 - exp(log sigmoid(b) - log sigmoid(a))).
        above = x > mu
        hi = torch.where(above, -minus, plus)
        lo = torch.where(above, -plus, minus)
        log_hi = F.logsigmoid(hi)
        log_mid = log_hi + torch.log(-torch.expm1((F.logsigmoid(lo) - log_hi).clamp(max=-1e-12)))
        log_p = torch.where(
            x < HALF_BIN,
            log_cdf_plus,
            torch.where(x > 1 - HALF_BIN, log_one_minus_cdf_min, log_mid),
        )
        return -flat_sum(log_p)

    def extra_stats(self) -> dict[str, float]:
        s = torch.exp(softclip_min(self.log_scale.detach(), -7.0)).mean()
        return {"decoder_sigma": float(s * math.pi / math.sqrt(3))}


#: ``loss.likelihood`` -> factory taking (the loss config, image channels). The names are those
#: of ``vaesweep.config.loss.LIKELIHOODS`` (tests/test_registries.py checks it).
LIKELIHOOD_FACTORIES: dict[str, Callable[[LossConfig, int], Likelihood]] = {
    "mse": lambda cfg, channels: SquaredError(),
    "gaussian": lambda cfg, channels: FixedGaussian(cfg.sigma),
    "gaussian_learned": lambda cfg, channels: LearnedGaussian(cfg.sigma, cfg.sigma_lr_scale),
    "gaussian_optimal": lambda cfg, channels: OptimalGaussian(cfg.sigma),
    "bernoulli": lambda cfg, channels: Bernoulli(),
    "cbernoulli": lambda cfg, channels: ContinuousBernoulli(),
    "laplace": lambda cfg, channels: Laplace(cfg.sigma),
    "dlogistic": lambda cfg, channels: DiscretizedLogistic(channels, cfg.sigma),
}


def build_likelihood(cfg: LossConfig, channels: int) -> Likelihood:
    """The likelihood named by ``loss.likelihood``."""
    return LIKELIHOOD_FACTORIES[cfg.likelihood](cfg, channels)
