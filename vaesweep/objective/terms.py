"""The VAE loss as a pure function of tensors, returning each term separately.

Accounting (README, "What beta means"): per image, the reconstruction term is summed over its D
pixels and the KL over the M latent dimensions; a batch averages per-image values. The
training objective of the plain beta-VAE is then ``mean(recon) + beta * mean(KL)`` (see
:mod:`vaesweep.control` for the other ways of weighting the KL).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from vaesweep.objective.likelihood_base import Likelihood


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per latent dimension, in nats.

    ``0.5 * (mu^2 + sigma^2 - 1 - ln sigma^2)`` (Kingma & Welling 2014, appendix B).
    Shapes: mu, logvar (B, M) -> (B, M).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


@dataclass(frozen=True)
class LossTerms:
    """Per-image terms of one batch (B images, M latent dims, D pixels each)."""

    #: (B,) reconstruction term as trained: SSE for ``mse``, otherwise nats.
    recon: torch.Tensor
    #: (B,) negative log-likelihood in nats under the (proper) decoder density.
    nll: torch.Tensor
    #: (B, M) KL per latent dimension, nats.
    kl_per_dim: torch.Tensor
    #: (B,) sum of squared errors of the decoder mean, whatever the likelihood.
    sse: torch.Tensor

    @cached_property
    def kl(self) -> torch.Tensor:
        """(B,) KL per image, nats (summed over latent dimensions); computed once."""
        return self.kl_per_dim.sum(1)

    @property
    def elbo(self) -> torch.Tensor:
        """(B,) evidence lower bound at beta = 1, nats: -(nll + KL)."""
        return -(self.nll + self.kl)


def loss_terms(
    x: torch.Tensor,
    params: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: Likelihood,
) -> LossTerms:
    """All terms for a batch: x, params (B, C, H, W); mu, logvar (B, M)."""
    recon, nll, sse = likelihood.terms(params, x)
    return LossTerms(recon=recon, nll=nll, kl_per_dim=gaussian_kl(mu, logvar), sse=sse)
