"""Residual convolutional encoder and decoder for colour images of 32-128 px.

Layout (encoder; the decoder mirrors it):

    stem     4x4 conv, stride 2                      (C, S, S) -> (w0, S/2, S/2)
    stage i  ``blocks`` residual blocks, then a 4x4 stride-2 conv to the next width
    head     GroupNorm, SiLU, flatten, linear -> (mu, logvar)

Stages halve the image until it is at most 4 px, so depth grows with the image (64 px: 4
halvings; 128 px: 5) and widths double per stage from ``width`` up to ``max_width``. A residual
block is pre-activation ``x + conv(SiLU(GN(conv(SiLU(GN(x))))))`` (He et al. 2016, *Identity
Mappings in Deep Residual Networks*, arXiv:1603.05027) with GroupNorm (Wu & He 2018,
arXiv:1803.08494), which, unlike BatchNorm, does not couple the images of a batch, so the
per-image ELBO stays a per-image quantity and evaluation matches training. The last conv of each
block starts at zero, so every block starts as the identity. This is the block of the
hierarchical VAEs (Vahdat & Kautz 2020, *NVAE*, arXiv:2007.03898; Child 2021, *Very Deep VAEs*,
arXiv:2011.10650) in a single-latent VAE.

``latent_dim=None`` sizes the code to the image: C*H*W / 96, clamped to [16, 512] (64x64 RGB:
128; 32x32 RGB: 32; 128x128 RGB: 512), because a natural-image folder at 64 px has on the order
of a hundred principal directions above the noise level of beta = 1 (sigma^2 = 1/2 per image,
sum convention), and a code with fewer dimensions than that limits every beta alike.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaesweep.config import ResConvConfig
from vaesweep.model.conv import stage_sizes
from vaesweep.model.small_images import FoldConvTranspose2d

#: Pixels per latent dimension when ``latent_dim`` is None, and the range it is clamped to.
PIXELS_PER_LATENT = 96
LATENT_RANGE = (16, 512)


def auto_latent_dim(shape: tuple[int, int, int]) -> int:
    """The latent size for images of ``shape`` (C, H, W) when ``model.latent_dim`` is null."""
    return int(min(max(math.prod(shape) // PIXELS_PER_LATENT, LATENT_RANGE[0]), LATENT_RANGE[1]))


def resolved_latent_dim(cfg: ResConvConfig, shape: tuple[int, int, int]) -> int:
    return cfg.latent_dim if cfg.latent_dim is not None else auto_latent_dim(shape)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """Pre-activation residual block at constant width and size: (B, c, h, w) -> same."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(channels, groups),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, groups),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        last = self.body[-1]
        assert isinstance(last, nn.Conv2d)
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _widths(cfg: ResConvConfig, n: int) -> list[int]:
    return [min(cfg.width * 2**i, cfg.max_width) for i in range(n)]


class ResConvEncoder(nn.Module):
    """(B, C, H, W) in [0, 1] -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, cfg: ResConvConfig, shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = shape
        self.latent_dim = resolved_latent_dim(cfg, shape)
        self.heights = stage_sizes(height, None)
        self.widths_px = stage_sizes(width, len(self.heights) - 1)
        widths = _widths(cfg, len(self.heights) - 1)
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, stride=2, padding=1)]
        for i, c in enumerate(widths):
            layers += [ResBlock(c, cfg.groups) for _ in range(cfg.blocks)]
            if i + 1 < len(widths):
                layers.append(nn.Conv2d(c, widths[i + 1], 4, stride=2, padding=1))
        layers += [_norm(widths[-1], cfg.groups), nn.SiLU(), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_shape = (widths[-1], self.heights[-1], self.widths_px[-1])
        self.head = nn.Linear(math.prod(self.feature_shape), 2 * self.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class ResConvDecoder(nn.Module):
    """(B, latent_dim) -> decoder parameters (B, C, H, W), unconstrained."""

    def __init__(
        self, cfg: ResConvConfig, shape: tuple[int, int, int], encoder: ResConvEncoder
    ) -> None:
        super().__init__()
        channels = shape[0]
        widths = _widths(cfg, len(encoder.heights) - 1)
        self.feature_shape = encoder.feature_shape
        self.head = nn.Linear(encoder.latent_dim, math.prod(self.feature_shape))
        targets = list(zip(reversed(encoder.heights[:-1]), reversed(encoder.widths_px[:-1])))
        layers: list[nn.Module] = []
        rev = list(reversed(widths))
        for i, c in enumerate(rev):
            layers += [ResBlock(c, cfg.groups) for _ in range(cfg.blocks)]
            th, tw = targets[i]
            c_out = rev[i + 1] if i + 1 < len(rev) else c
            if i + 1 == len(rev):
                layers += [_norm(c, cfg.groups), nn.SiLU()]
            # output_padding = target % 2 recovers odd sides, as in the conv model.
            layers.append(
                FoldConvTranspose2d(
                    c, c_out, 4, stride=2, padding=1, output_padding=(th % 2, tw % 2)
                )
            )
        layers += [nn.SiLU(), nn.Conv2d(widths[0], channels, 3, padding=1)]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(self.head(z).view(-1, *self.feature_shape))
