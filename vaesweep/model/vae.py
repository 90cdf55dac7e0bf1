"""The VAE: encoder q(z|x) = N(mu, diag sigma^2), prior N(0, I), decoder p(x|z) (Kingma & Welling 2014)."""

from __future__ import annotations

import torch
from torch import nn

from vaesweep.objective.likelihood_base import Likelihood

#: log-variances are clamped to this range before exponentiation; exp(+-30) is still finite in
#: float32 and far outside anything a healthy run produces, so it only stops inf/NaN cascades.
LOGVAR_RANGE = (-30.0, 20.0)


class VAE(nn.Module):
    """Encoder, decoder and likelihood (which may hold learned parameters, e.g. a shared sigma)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        latent_dim: int,
        shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.shape = shape

    @property
    def n_pixels(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> mu, logvar (B, M)."""
        mu, logvar = self.encoder(x)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, M) -> decoder parameters (B, C, H, W), contiguous in the default layout
        whichever layout the decoder computes in (``model.layout``)."""
        return self.decoder(z).contiguous()

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) given, so the caller owns the randomness."""
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (params, mu, logvar); z = mu when ``eps`` is None (deterministic reconstruction)."""
        mu, logvar = self.encode(x)
        z = mu if eps is None else self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at z = mu: the reconstruction shown in grids."""
        params, _, _ = self(x)
        return self.likelihood.mean(params)

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean for prior draws z (B, M)."""
        return self.likelihood.mean(self.decode(z))
