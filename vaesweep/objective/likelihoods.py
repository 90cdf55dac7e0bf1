"""Decoder likelihoods p(x | z) for images with pixels in [0, 1].

Every likelihood maps the decoder's unconstrained output ``params`` (B, C, H, W) to:

* ``recon(params, x)`` (B,): the reconstruction term as trained, summed over pixels. For
  ``mse`` it is the sum of squared errors (SSE) per image, otherwise the negative
  log-likelihood in nats per image;
* ``nll(params, x)`` (B,): the negative log-likelihood in nats per image with all normalising
  constants (for ``mse``, the Gaussian with variance 1/2 that ``SSE + beta * KL`` is the ELBO of
  at beta = 1). Densities on [0, 1]^D (Gaussian, continuous Bernoulli, Laplace) and
  probabilities of discrete pixels (Bernoulli, discretised logistic) are not on one scale, so
  ELBOs compare only within one kind on the same data; across kinds compare dequantised bits
  per dimension (Theis et al. 2016);
* ``mean(params)``: the image the decoder predicts, for reconstructions and samples;
* ``sigma2_eff(beta_sum)``: the Gaussian decoder variance that makes ``recon + beta * KL`` a
  true ELBO (science notes 1.4 and 2.2): beta / 2 for mse, beta * sigma^2 for a Gaussian; NaN
  where no Gaussian reading exists (Bernoulli family, logistic, Laplace).

References: Kingma & Welling 2014 (Gaussian/Bernoulli decoders); Rybkin et al. 2021 (sigma-VAE,
learned and optimal shared variance, log-sigma soft clip at -6); Loaiza-Ganem & Cunningham
2019 (continuous Bernoulli); Salimans et al. 2017 (discretised logistic).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaesweep.config import LossConfig

LOG_2PI = math.log(2 * math.pi)
#: Half-width of one 8-bit grey level on the [0, 1] scale (levels k / 255).
HALF_BIN = 0.5 / 255.0
#: Sharpness of the soft clip on the closed-form log sigma of ``gaussian_optimal``.
OPTIMAL_CLIP_SHARPNESS = 20.0


def _flat_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


def softclip_min(t: torch.Tensor, low: float, sharpness: float = 1.0) -> torch.Tensor:
    """Smoothly clamp from below (sigma-VAE's ``softclip``): ~t above ``low``, -> low below.

    ``low + softplus(sharpness * (t - low)) / sharpness``. At sharpness 1 (sigma-VAE's code)
    the result exceeds t by ln(1 + e^-(t - low)) even well above ``low``: 0.02 at 4 nats
    above it. A larger sharpness keeps the smooth bound and is the identity (exactly, by
    softplus's linear threshold) once t is 20 / sharpness above ``low``.
    """
    return low + F.softplus(t - low, beta=sharpness)


class Likelihood(nn.Module):
    """Base class; subclasses override ``nll`` (and ``recon`` if it differs)."""

    name = "base"
    #: Unit of ``recon``: "nats" or "sse".
    units = "nats"
    #: True when ``nll`` is a probability of the 8-bit grey levels (no dequantisation offset).
    discrete = False

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def recon(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll(params, x)

    def sigma2_eff(self, beta_sum: float) -> float:
        return math.nan

    def extra_stats(self) -> dict[str, float]:
        """Learned or adapted quantities worth logging (e.g. the decoder sigma)."""
        return {}

    def terms(
        self, params: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(recon, nll, sse) per image, each (B,); subclasses share the work between them."""
        sse = _flat_sum((self.mean(params) - x) ** 2)
        nll = self.nll(params, x)
        recon = nll if self.units == "nats" else self.recon(params, x)
        return recon, nll, sse


class SquaredError(Likelihood):
    """``||x - x_hat||^2``: the motivating loss. ``SSE + beta*KL`` is the Gaussian ELBO at sigma^2 = beta/2."""

    name = "mse"
    units = "sse"

    def recon(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _flat_sum((self.mean(params) - x) ** 2)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # N(x; x_hat, 1/2): SSE / (2 * 1/2) + D/2 * ln(2 * pi * 1/2).
        d = x[0].numel()
        return self.recon(params, x) + 0.5 * d * math.log(math.pi)

    def sigma2_eff(self, beta_sum: float) -> float:
        return beta_sum / 2.0

    def terms(
        self, params: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sse = _flat_sum((self.mean(params) - x) ** 2)
        return sse, sse + 0.5 * x[0].numel() * math.log(math.pi), sse


def gaussian_nll_from_sse(
    sse: torch.Tensor, n_pixels: int, log_sigma: torch.Tensor
) -> torch.Tensor:
    """The same as :func:`gaussian_nll` from per-image SSE (B,): one pass over the pixels."""
    return 0.5 * sse * torch.exp(-2 * log_sigma) + n_pixels * (log_sigma + 0.5 * LOG_2PI)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, sigma^2) summed over pixels: SSE / (2 sigma^2) + D ln sigma + D/2 ln 2 pi."""
    per_pixel = 0.5 * (mean - x) ** 2 * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * LOG_2PI
    return _flat_sum(per_pixel)


class FixedGaussian(Likelihood):
    """N(x; x_hat, sigma^2) with fixed sigma (``loss.sigma``)."""

    name = "gaussian"

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = float(sigma)

    def log_sigma(self) -> torch.Tensor:
        """The log standard deviation used at evaluation (scalar tensor)."""
        return torch.tensor(math.log(self.sigma))

    def log_sigma_like(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`log_sigma` on ``x``'s device and dtype. The fixed sigma is filled there: a
        copy from the host would make a GPU step wait for the host."""
        if type(self).log_sigma is FixedGaussian.log_sigma:
            return torch.full((), math.log(self.sigma), dtype=x.dtype, device=x.device)
        return self.log_sigma().to(x)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(self.mean(params), x, self.log_sigma_like(x))

    def sigma2(self) -> float:
        return float(torch.exp(2 * self.log_sigma().detach()))

    def sigma2_eff(self, beta_sum: float) -> float:
        # (SSE / (2 sigma^2) + beta KL) / beta is the ELBO of a Gaussian of variance beta * sigma^2.
        return beta_sum * self.sigma2()

    def extra_stats(self) -> dict[str, float]:
        return {"decoder_sigma": math.sqrt(self.sigma2())}

    def terms(
        self, params: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sse = _flat_sum((self.mean(params) - x) ** 2)
        nll = gaussian_nll_from_sse(sse, x[0].numel(), self._log_sigma_for(sse, x))
        return nll, nll, sse

    def _log_sigma_for(self, sse: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log sigma to score a batch with (the optimal-variance model derives it from sse)."""
        return self.log_sigma_like(x)


class LearnedGaussian(FixedGaussian):
    """One shared sigma learned with the model (Rybkin et al. 2021); log sigma soft-clipped >= -6.

    The parameter is ``log_sigma_scaled = log sigma / lr_scale``. Adam's step is invariant to
    the scale of a gradient, so it moves log sigma ``lr_scale`` times faster than a weight:
    log sigma gets its own learning rate ``lr_scale * train.lr`` (``loss.sigma_lr_scale``,
    see :class:`vaesweep.config.LossConfig` for the measurement behind the default).
    """

    name = "gaussian_learned"

    def __init__(self, sigma: float, lr_scale: float = 1.0) -> None:
        super().__init__(sigma)
        self.lr_scale = float(lr_scale)
        self.log_sigma_scaled = nn.Parameter(torch.tensor(math.log(sigma) / self.lr_scale))

    def log_sigma(self) -> torch.Tensor:
        return softclip_min(self.lr_scale * self.log_sigma_scaled, -6.0)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before loss.sigma_lr_scale held log sigma itself.
        old = state_dict.pop(prefix + "log_sigma_raw", None)
        if old is not None:
            state_dict[prefix + "log_sigma_scaled"] = old / self.lr_scale
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class OptimalGaussian(FixedGaussian):
    """sigma-VAE's closed-form shared variance: sigma^2 = MSE of the batch (Rybkin et al. 2021).

    Training uses the batch MSE (gradients flow through it, so the objective is
    D/2 * ln MSE + KL up to constants); evaluation uses a running average of it, so validation
    numbers do not depend on how the split is batched. log sigma is soft-clipped at -6 like
    sigma-VAE's code, but sharply (:data:`OPTIMAL_CLIP_SHARPNESS`), so sigma^2 is exactly the
    MSE whenever sigma > e^-5; the code's sharpness-1 clip inflates sigma^2 by 5-50 % at
    typical image MSEs of 1e-2 .. 1e-4.
    """

    name = "gaussian_optimal"
    running_mse: torch.Tensor  # a buffer: saved in state_dict, not trained

    def __init__(self, sigma: float) -> None:
        super().__init__(sigma)
        # -1 marks "no batch seen yet": the first training batch sets it directly.
        self.register_buffer("running_mse", torch.tensor(-1.0))

    def log_sigma(self) -> torch.Tensor:
        mse = self.running_mse if self.running_mse > 0 else torch.tensor(self.sigma**2)
        return softclip_min(0.5 * torch.log(mse), -6.0, OPTIMAL_CLIP_SHARPNESS)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.terms(params, x)[1]

    def _log_sigma_for(self, sse: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.log_sigma()
        mse = sse.sum() / x.numel()
        with torch.no_grad():
            # On the device, without asking the host whether a batch was seen (a GPU would
            # wait for that answer every step).
            running = self.running_mse
            seen = running * 0.9 + 0.1 * mse
            running.copy_(torch.where(running < 0, mse, seen))
        return softclip_min(0.5 * torch.log(mse), -6.0, OPTIMAL_CLIP_SHARPNESS)


class Bernoulli(Likelihood):
    """Bernoulli with logits; a proper likelihood only for binary pixels (``data.binarize``)."""

    name = "bernoulli"

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _flat_sum(F.binary_cross_entropy_with_logits(params, x, reduction="none"))


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
        return _flat_sum(F.softplus(params) - x * params - cb_log_norm(params))

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
        return _flat_sum(per_pixel)

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
        return -_flat_sum(log_p)

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
