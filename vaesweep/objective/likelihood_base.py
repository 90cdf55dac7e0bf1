"""The decoder likelihood p(x | z) that every ``loss.likelihood`` implements, for pixels in [0, 1].

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

The Gaussian family is in :mod:`vaesweep.objective.gaussian_likelihoods`, the others and the
registry of names in :mod:`vaesweep.objective.likelihoods`.

References: Kingma & Welling 2014 (Gaussian/Bernoulli decoders); Rybkin et al. 2021 (sigma-VAE,
the soft clip of log sigma); Theis et al. 2016 (bits per dimension).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def flat_sum(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the sum over everything but the batch axis (pixels, channels)."""
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
        sse = flat_sum((self.mean(params) - x) ** 2)
        nll = self.nll(params, x)
        recon = nll if self.units == "nats" else self.recon(params, x)
        return recon, nll, sse
