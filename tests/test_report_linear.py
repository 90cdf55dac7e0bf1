"""The linear-Gaussian (PCA) reference of the report against closed forms and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaesweep.report.data.linear_reference import Spectrum, rd_curve, sse_at_rate, water_filling


def spectrum(eig: list[float], total: float | None = None) -> Spectrum:
    return Spectrum(np.asarray(eig, dtype=float), float(sum(eig) if total is None else total))


def test_closed_form_three_components() -> None:
    # lambda = [4, 1, 0.25], sigma^2 = 0.5: components 1 and 2 are above the water level.
    sp = spectrum([4.0, 1.0, 0.25])
    p = water_filling(sp, latent_dim=3, sigma2=0.5)
    assert p.active_units == 2
    assert p.rate == pytest.approx(0.5 * math.log(8) + 0.5 * math.log(2))
    assert p.sse == pytest.approx(0.5 + 0.5 + 0.25)


def test_components_beyond_the_latent_size_keep_their_variance() -> None:
    sp = spectrum([4.0, 1.0, 0.25], total=5.25 + 0.75)  # 0.75 of variance beyond the top 3
    p = water_filling(sp, latent_dim=2, sigma2=0.1)
    assert p.active_units == 2
    assert p.rate == pytest.approx(0.5 * math.log(40) + 0.5 * math.log(10))
    assert p.sse == pytest.approx(0.1 + 0.1 + 0.25 + 0.75)
    # Above the largest eigenvalue nothing is encoded: the mean image, SSE = total variance.
    top = water_filling(sp, latent_dim=2, sigma2=5.0)
    assert (top.active_units, top.rate, top.sse) == (0, 0.0, pytest.approx(6.0))


def test_sse_at_rate_inverts_the_curve() -> None:
    sp = spectrum([3.0, 1.5, 0.7, 0.2, 0.05], total=5.6)
    for s2 in (2.0, 0.9, 0.3, 0.1, 0.01, 1e-4):
        p = water_filling(sp, 4, s2)
        assert sse_at_rate(sp, 4, p.rate) == pytest.approx(p.sse, rel=1e-9)
    assert sse_at_rate(sp, 4, 0.0) == pytest.approx(5.6)


def test_curve_is_decreasing_convex_with_slope_minus_beta() -> None:
    sp = spectrum([3.0, 1.5, 0.7, 0.2, 0.05])
    s2, r, d = rd_curve(sp, 5, n=400)
    order = np.argsort(r)
    r, d, s2 = r[order], d[order], s2[order]
    assert np.all(np.diff(d) <= 1e-12)
    ok = np.diff(r) > 1e-6
    slope = np.diff(d)[ok] / np.diff(r)[ok]
    # dD/dR = -2 sigma^2 = -beta (Lucas et al. 2019; Alemi et al. 2018): the slope tracks the water level.
    mid = 0.5 * (s2[1:] + s2[:-1])
    assert np.allclose(slope, -2 * mid[ok], rtol=0.05)
    assert np.all(np.diff(slope) >= -1e-9)  # convex


def test_data_with_known_covariance_matches_a_simulated_linear_vae() -> None:
    """Sample data with a known covariance; the spectrum estimated from the samples gives the
    reference, and an explicit optimal linear VAE (pPCA, Tipping & Bishop 1999) run on the same
    samples must reach that rate and SSE."""
    rng = np.random.default_rng(0)
    lam = np.array([2.0, 1.0, 0.6, 0.3, 0.1, 0.05])
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # a random rotation of the axes
    n = 200_000
    x = (rng.normal(size=(n, 6)) * np.sqrt(lam)) @ q.T
    cov = np.cov(x, rowvar=False)
    eig, vec = np.linalg.eigh(cov)
    eig, vec = eig[::-1], vec[:, ::-1]
    sp = Spectrum(eig, float(np.trace(cov)))
    assert np.allclose(sp.eigenvalues, lam, rtol=0.02)
    m, s2 = 4, 0.4
    p = water_filling(sp, m, s2)
    assert p.active_units == 3  # 2.0, 1.0 and 0.6 are above 0.4
    # Optimal linear VAE along the principal axes: W_i = sqrt(lam_i - s2) for lam_i > s2,
    # posterior z_i | x ~ N(W_i u_i / lam_i, s2 / lam_i), u = projection on axis i.
    u = x @ vec[:, :m]
    w = np.sqrt(np.clip(eig[:m] - s2, 0, None))
    mu = u * (w / eig[:m])
    var = np.where(w > 0, s2 / eig[:m], 1.0)
    kl = 0.5 * (mu**2 + var - 1 - np.log(var)).sum(1).mean()
    z = mu + np.sqrt(var) * rng.normal(size=mu.shape)
    x_hat = (z * w) @ vec[:, :m].T
    sse = ((x - x_hat) ** 2).sum(1).mean()
    assert kl == pytest.approx(p.rate, rel=0.02)
    assert sse == pytest.approx(p.sse, rel=0.02)


def test_spectrum_from_summary_tolerates_missing_or_bad_data() -> None:
    assert Spectrum.from_summary({}) is None
    assert Spectrum.from_summary({"data": {"pca": {"eigenvalues": "x"}}}) is None
    sp = Spectrum.from_summary(
        {"data": {"pca": {"eigenvalues": [0.5, 2.0, -1e-9], "total_variance": 3.0}}}
    )
    assert sp is not None
    assert list(sp.eigenvalues) == [2.0, 0.5, 0.0]  # sorted descending, clipped at zero
