"""Convolutional encoder and decoder that adapt to any channel count and image size >= 8 px.

Each encoder stage is a 4x4 convolution with stride 2 and padding 1, which maps a side of s
pixels to floor(s / 2); the decoder mirrors it with transposed convolutions whose
``output_padding`` restores odd sizes exactly (7 -> 3 -> 7), so 28x28 and 8x8 both work.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaesweep.config import ConvConfig
from vaesweep.model.fit import max_stages
from vaesweep.model.small_images import FoldConvTranspose2d


def stage_sizes(size: int, depth: int | None) -> list[int]:
    """Side lengths through the encoder, input first: 28 -> [28, 14, 7, 3] for depth 3.

    ``depth=None`` halves until the side is at most 4 px (at least one stage).
    """
    if depth is not None and depth > max_stages(size):
        raise ValueError(
            f"{size} px is too small for {depth} stride-2 stages (at most {max_stages(size)})"
        )
    sizes = [size]
    while (depth is None and (sizes[-1] > 4 or len(sizes) == 1)) or (
        depth is not None and len(sizes) <= depth
    ):
        if sizes[-1] < 2:
            raise ValueError(f"{size} px is too small for {len(sizes)} stride-2 stages")
        sizes.append(sizes[-1] // 2)
    return sizes


def stage_widths(cfg: ConvConfig, n_stages: int) -> list[int]:
    return [min(cfg.width * 2**i, cfg.max_width) for i in range(n_stages)]


class ConvEncoder(nn.Module):
    """(B, C, H, W) in [0, 1] -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, cfg: ConvConfig, shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = shape
        self.heights = stage_sizes(height, cfg.depth)
        self.widths_px = stage_sizes(width, len(self.heights) - 1)
        widths = stage_widths(cfg, len(self.heights) - 1)
        layers: list[nn.Module] = []
        c_in = channels
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.feature_shape = (widths[-1], self.heights[-1], self.widths_px[-1])
        n_feat = widths[-1] * self.heights[-1] * self.widths_px[-1]
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_feat, cfg.hidden_dim),
            nn.SiLU(),
            nn.Linear(cfg.hidden_dim, 2 * cfg.latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> decoder parameters (B, C, H, W), unconstrained (logits / pre-sigmoid)."""

    def __init__(self, cfg: ConvConfig, shape: tuple[int, int, int], encoder: ConvEncoder) -> None:
        super().__init__()
        channels = shape[0]
        widths = stage_widths(cfg, len(encoder.heights) - 1)
        self.feature_shape = encoder.feature_shape
        n_feat = math.prod(self.feature_shape)
        self.head = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden_dim),
            nn.SiLU(),
            nn.Linear(cfg.hidden_dim, n_feat),
            nn.SiLU(),
        )
        layers: list[nn.Module] = []
        # Walk the encoder backwards; output_padding = target % 2 recovers odd sides.
        outs = [*reversed(widths[:-1]), channels]
        c_in = widths[-1]
        targets = list(zip(reversed(encoder.heights[:-1]), reversed(encoder.widths_px[:-1])))
        for i, (c_out, (th, tw)) in enumerate(zip(outs, targets)):
            layers.append(
                FoldConvTranspose2d(
                    c_in, c_out, 4, stride=2, padding=1, output_padding=(th % 2, tw % 2)
                )
            )
            if i < len(outs) - 1:
                layers.append(nn.SiLU())
            c_in = c_out
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(-1, *self.feature_shape)
        return self.features(h)
