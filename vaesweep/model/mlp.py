"""Fully connected encoder and decoder on flattened images (Kingma & Welling 2014, App. C)."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from vaesweep.config import MLPConfig


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, C, H, W) -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, cfg: MLPConfig, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = _mlp([math.prod(shape), *cfg.hidden, 2 * cfg.latent_dim])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """(B, latent_dim) -> decoder parameters (B, C, H, W), unconstrained."""

    def __init__(self, cfg: MLPConfig, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.net = _mlp([cfg.latent_dim, *reversed(cfg.hidden), math.prod(shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)
