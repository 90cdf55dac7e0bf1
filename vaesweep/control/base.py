"""The interface every KL-control method implements, and the constant beta-VAE.

A controller owns how the KL enters the objective. Each step the trainer calls
``objective(terms, step)`` (a scalar to minimise), then ``observe(terms, step)`` with the
same batch so feedback methods (GECO, PI, capacity) can update their state
(:mod:`vaesweep.control.state`). ``beta_t(step)`` is the weight on the KL in effect, in the
canonical convention (per-image sums; for methods built on a squared-error constraint, the
SSE convention), logged every epoch so all methods share one axis.
State needed to continue a schedule is in ``state_dict`` and goes into checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vaesweep.objective.effective_beta import recon_scale
from vaesweep.objective.terms import LossTerms


@dataclass(frozen=True)
class RunShape:
    """What schedules need to know about the run: lengths in steps, sizes of x and z."""

    steps_per_epoch: int
    total_steps: int
    n_pixels: int
    latent_dim: int
    #: 1 for ``loss.recon_reduction=sum``, 1/D for ``mean``.
    recon_scale: float = 1.0

    def steps(self, epochs: float) -> int:
        return max(1, round(epochs * self.steps_per_epoch))

    @classmethod
    def for_run(
        cls,
        n_train: int,
        batch_size: int,
        total_steps: int,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        recon_reduction: str,
    ) -> RunShape:
        """The shape of a run of ``total_steps`` over ``n_train`` images of ``image_shape``."""
        steps = math.ceil(n_train / batch_size)
        d = math.prod(image_shape)
        return cls(steps, total_steps, d, latent_dim, recon_scale(recon_reduction, d))


class KLControl:
    """Base class: a fixed weight ``beta`` times the batch-mean KL (the plain beta-VAE)."""

    method = "constant"

    def __init__(self, beta: float, shape: RunShape) -> None:
        self.beta = float(beta)
        self.shape = shape

    def beta_t(self, step: int) -> float:
        """Weight on the KL at optimiser step ``step`` (0-based: steps taken before this one)."""
        return self.beta

    def kl_weighted(self, step: int) -> bool:
        """Whether the KL enters the objective at step ``step`` (a plain autoencoder, beta = 0,
        or a schedule at its zero, leaves it free: the divergence rule then ignores its
        growth, :mod:`vaesweep.training.divergence`)."""
        return self.beta_t(step) > 0

    def kl_penalty(self, terms: LossTerms, step: int) -> torch.Tensor:
        """The KL part of the objective (scalar)."""
        return self.beta_t(step) * terms.kl.mean()

    def objective(self, terms: LossTerms, step: int) -> torch.Tensor:
        return self.shape.recon_scale * terms.recon.mean() + self.kl_penalty(terms, step)

    def observe(self, terms: LossTerms, step: int) -> None:
        """Update internal state after a step (feedback controllers); no-op for schedules."""

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        """Method-specific values worth logging (e.g. the free-bits share, GECO's lambda)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
