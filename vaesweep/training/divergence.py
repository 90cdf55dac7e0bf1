"""When a finite loss has still diverged: a term that grows by orders of magnitude.

A non-finite loss is the obvious divergence. The other kind ends with finite numbers: with a
learning rate far too large (``train.lr=10``) the encoder's means run away and the KL reaches
billions of nats per image within the first epoch while the reconstruction term stays put, so
the run would end ``completed`` with meaningless final values. The rule: a run has diverged when
a batch's mean KL, or its mean reconstruction term, exceeds its running minimum over the
batches checked so far by more than :data:`GROWTH` times ``max(|running minimum|, floor)``. The
floors (1 nat per latent dimension for the KL, 1 nat per pixel for the reconstruction term, both
in nats per image) keep a KL that starts near zero, as it does at initialisation, from being
read as growth: a trained VAE stays far below 1000 nats per latent dimension, which would need
posterior means 45 prior standard deviations out.

The two terms are watched rather than the objective, because the objective of a KL control
method (a GECO multiplier, a capacity target) may legitimately change scale. The KL is watched
only while it is weighted in the objective (``KLControl.kl_weighted``: beta_t > 0): a plain
autoencoder (beta = 0) or a schedule at its zero leaves the KL free to grow by any factor
without anything having gone wrong, and its running minimum is taken over the weighted batches
only, so a KL that grew while free is not read as growth once it is weighted again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Orders of magnitude (as a factor) a term may grow over its running minimum.
GROWTH = 1e3


@dataclass
class DivergenceGuard:
    """Running minima of the batch-mean KL and reconstruction term (nats per image).

    ``kl_floor`` and ``recon_floor`` are the scales below which growth is not counted (see the
    module docstring). The minima start afresh when a run resumes, which can only delay a
    detection, never invent one.
    """

    kl_floor: float
    recon_floor: float
    growth: float = GROWTH
    kl_min: float = math.inf
    recon_min: float = math.inf

    @classmethod
    def for_model(cls, latent_dim: int, n_pixels: int) -> DivergenceGuard:
        return cls(kl_floor=float(max(latent_dim, 1)), recon_floor=float(max(n_pixels, 1)))

    def check(self, recon: float, kl: float, kl_weighted: bool = True) -> str | None:
        """Record one batch's mean terms; return why the run diverged, or None.

        ``kl_weighted``: whether the KL is in this batch's objective; when it is not, its
        growth is no divergence and it is not recorded."""
        why = None
        if kl_weighted:
            why = _grown("KL", kl, self.kl_min, self.kl_floor, self.growth)
            self.kl_min = min(self.kl_min, kl)
        why = why or _grown(
            "reconstruction term", recon, self.recon_min, self.recon_floor, self.growth
        )
        self.recon_min = min(self.recon_min, recon)
        return why


def _grown(name: str, value: float, low: float, floor: float, growth: float) -> str | None:
    if not math.isfinite(low):
        return None
    limit = low + growth * max(abs(low), floor)
    if value <= limit:
        return None
    return (
        f"{name} grew to {value:.4g} nats per image, more than {growth:g} x its running "
        f"minimum ({low:.4g}, floor {floor:g})"
    )
