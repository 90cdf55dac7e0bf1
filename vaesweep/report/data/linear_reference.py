"""The linear-Gaussian (PCA) reference: what a linear VAE achieves on data with this covariance.

Lucas et al. 2019, "Don't Blame the ELBO! A Linear VAE Perspective on Posterior Collapse";
Tipping & Bishop 1999, "Probabilistic Principal Component Analysis"; reverse water-filling,
Cover & Thomas 2006, "Elements of Information Theory", ch. 10.

With eigenvalues ``lambda_1 >= lambda_2 >= ...`` of the data covariance (per-image SSE units, pixels
in [0, 1]), M latent dimensions and a fixed decoder variance ``sigma^2`` (``beta_sum / 2`` for
squared error, ``sigma2_eff`` in general), the optimal linear VAE has

* active units  ``AU = #{i <= M : lambda_i > sigma^2}``;
* rate          ``R = sum_{i<=M} 1/2 ln+(lambda_i / sigma^2)`` nats per image;
* expected SSE  ``D = sum_{i<=M} min(lambda_i, sigma^2) + (total - sum_{i<=M} lambda_i)``.

Its (R, D) curve is convex with slope ``dD/dR = -2 sigma^2 = -beta`` and is achieved exactly by a
linear VAE on *any* data with these second moments, so a non-linear VAE whose point lies above
it does worse than PCA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Spectrum:
    """Top eigenvalues (descending) and total variance of the training data, SSE per image."""

    eigenvalues: np.ndarray
    total_variance: float

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Spectrum | None:
        """``summary["data"]["pca"]`` of a run (None when absent or unusable)."""
        pca = ((summary or {}).get("data") or {}).get("pca") or {}
        try:
            eig = np.sort(np.asarray(pca["eigenvalues"], dtype=float))[::-1]
            total = float(pca["total_variance"])
        except (KeyError, TypeError, ValueError):
            return None
        eig = eig[np.isfinite(eig)]
        if eig.size == 0 or not math.isfinite(total) or total <= 0:
            return None
        return cls(np.clip(eig, 0.0, None), total)

    def top(self, latent_dim: int) -> np.ndarray:
        """The eigenvalues a linear VAE with ``latent_dim`` dimensions can encode."""
        return self.eigenvalues[: max(int(latent_dim), 0)]

    def key(self) -> tuple[float, ...]:
        return (round(self.total_variance, 9), *np.round(self.eigenvalues[:8], 9))


@dataclass(frozen=True)
class LinearPoint:
    """The optimal linear VAE at one noise level: units, rate (nats), SSE per image."""

    sigma2: float
    active_units: int
    rate: float
    sse: float


def water_filling(spectrum: Spectrum, latent_dim: int, sigma2: float) -> LinearPoint:
    """AU, rate and expected SSE of the optimal linear VAE with decoder variance ``sigma2``.

    Reverse water-filling (Cover & Thomas 2006, ch. 10) with water level ``sigma2``: components
    above the level are encoded at rate ``1/2 ln(lambda / sigma2)`` and leave ``sigma2`` of error
    each; the rest, and every component beyond the M latent dimensions, keep their whole variance.
    """
    if not (sigma2 > 0 and math.isfinite(sigma2)):
        raise ValueError(f"sigma2 must be positive and finite, got {sigma2}")
    lam = spectrum.top(latent_dim)
    on = lam > sigma2
    rate = 0.5 * float(np.log(lam[on] / sigma2).sum())
    sse = float(np.minimum(lam, sigma2).sum()) + (spectrum.total_variance - float(lam.sum()))
    return LinearPoint(sigma2, int(on.sum()), rate, sse)


def sse_at_rate(spectrum: Spectrum, latent_dim: int, rate: float) -> float:
    """The linear VAE's SSE per image at a given rate (nats): the curve read at that rate.

    Inverts ``R(sigma^2)`` exactly: with k components above the water level,
    ``ln sigma^2 = (sum_{i<=k} ln lambda_i - 2R) / k``, valid when it falls in
    ``[lambda_{k+1}, lambda_k)``.
    """
    if not math.isfinite(rate):
        return math.nan
    lam = spectrum.top(latent_dim)
    lam = lam[lam > 0]
    if rate <= 0 or lam.size == 0:
        return spectrum.total_variance
    logs = np.cumsum(np.log(lam))
    for k in range(1, lam.size + 1):
        s2 = math.exp((logs[k - 1] - 2.0 * rate) / k)
        if s2 < lam[k - 1] and (k == lam.size or s2 >= lam[k]):
            return water_filling(spectrum, latent_dim, s2).sse
    return water_filling(spectrum, latent_dim, float(lam[-1]) * 1e-12).sse  # pragma: no cover


def rd_curve(
    spectrum: Spectrum,
    latent_dim: int,
    sigma2: Sequence[float] | None = None,
    n: int = 160,
    max_rate: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigma2, rate, sse) along the reference curve, from R = 0 to beyond the smallest eigenvalue.

    The default grid spans the top-M eigenvalues on a log scale, from 1.5 x the largest (R = 0,
    SSE = total variance: the mean image) down to 1/1000 of the smallest encodable one, or
    further if needed to reach ``max_rate`` nats.
    """
    if sigma2 is None:
        lam = spectrum.top(latent_dim)
        lam = lam[lam > 0]
        if lam.size == 0:
            grid = np.array([spectrum.total_variance])
        else:
            low = lam[-1] * 1e-3
            if max_rate > 0:  # all k components on: ln s2 = (sum ln lambda - 2R) / k
                low = min(low, math.exp((np.log(lam).sum() - 2 * max_rate) / lam.size))
            grid = np.geomspace(lam[0] * 1.5, low, n)
    else:
        grid = np.asarray(sigma2, dtype=float)
    points = [water_filling(spectrum, latent_dim, float(s)) for s in grid]
    return (
        grid,
        np.array([p.rate for p in points]),
        np.array([p.sse for p in points]),
    )
