"""Gaussian decoders: squared error, and N(x; x_hat, sigma^2) with a fixed, learned or optimal sigma.

``SSE + beta * KL`` is the ELBO of a Gaussian decoder of variance beta / 2 (Kingma & Welling
2014); with a Gaussian of variance sigma^2, ``recon + beta * KL`` is the ELBO at beta * sigma^2
(:meth:`~vaesweep.objective.likelihood_base.Likelihood.sigma2_eff`). The learned and the
closed-form optimal shared variance are sigma-VAE's (Rybkin et al. 2021).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaesweep.objective.likelihood_base import Likelihood, flat_sum, softclip_min

LOG_2PI = math.log(2 * math.pi)
#: Sharpness of the soft clip on the closed-form log sigma of ``gaussian_optimal``.
OPTIMAL_CLIP_SHARPNESS = 20.0


class SquaredError(Likelihood):
    """``||x - x_hat||^2``: the motivating loss. ``SSE + beta*KL`` is the Gaussian ELBO at sigma^2 = beta/2."""

    name = "mse"
    units = "sse"

    def recon(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat_sum((self.mean(params) - x) ** 2)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # N(x; x_hat, 1/2): SSE / (2 * 1/2) + D/2 * ln(2 * pi * 1/2).
        d = x[0].numel()
        return self.recon(params, x) + 0.5 * d * math.log(math.pi)

    def sigma2_eff(self, beta_sum: float) -> float:
        return beta_sum / 2.0

    def terms(
        self, params: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sse = flat_sum((self.mean(params) - x) ** 2)
        return sse, sse + 0.5 * x[0].numel() * math.log(math.pi), sse


def gaussian_nll_from_sse(
    sse: torch.Tensor, n_pixels: int, log_sigma: torch.Tensor
) -> torch.Tensor:
    """The same as :func:`gaussian_nll` from per-image SSE (B,): one pass over the pixels."""
    return 0.5 * sse * torch.exp(-2 * log_sigma) + n_pixels * (log_sigma + 0.5 * LOG_2PI)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, sigma^2) summed over pixels: SSE / (2 sigma^2) + D ln sigma + D/2 ln 2 pi."""
    per_pixel = 0.5 * (mean - x) ** 2 * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * LOG_2PI
    return flat_sum(per_pixel)


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
        sse = flat_sum((self.mean(params) - x) ** 2)
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
