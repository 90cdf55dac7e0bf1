"""Issue 11 estimates against independent float64 references (own formulas, no vaesweep code).

A linear-Gaussian VAE (encoder and decoder affine, squared-error decoder) has closed forms for
what the estimators average over noise: E_eps of the reconstruction gradient, the expected SSE
and the ELBO. The estimators must converge to them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vaesweep.config import EvalConfig
from vaesweep.control import KLControl, RunShape
from vaesweep.data.spectrum import pca_spectrum
from vaesweep.evaluation import estimators
from vaesweep.evaluation.metrics import evaluate, iwae_estimate, iwae_estimates
from vaesweep.model.vae import VAE
from vaesweep.objective.gaussian_likelihoods import SquaredError

SHAPE = (1, 2, 3)
D, M = 6, 3


class _IdentityMean(SquaredError):
    """Squared error about the raw decoder output, so the decoder is exactly affine."""

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params


class _Encoder(nn.Module):
    def __init__(self, a: torch.Tensor, logvar: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)
        self.lv = nn.Parameter(logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = x.flatten(1) @ self.a
        return mu, self.lv.expand_as(mu)


class _Decoder(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(b)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w.T + self.b).view(-1, *SHAPE)


def _linear_vae(seed: int = 0, logvar: float = -1.0) -> tuple[VAE, dict[str, np.ndarray]]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(D, M, generator=g) * 0.8
    w = torch.randn(D, M, generator=g) * 0.3
    b = torch.rand(D, generator=g)
    lv = torch.full((M,), logvar) + 0.3 * torch.randn(M, generator=g)
    model = VAE(_Encoder(a, lv), _Decoder(w, b), _IdentityMean(), M, SHAPE)
    ref = {k: v.detach().double().numpy() for k, v in {"a": a, "w": w, "b": b, "lv": lv}.items()}
    return model, ref


def _images(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)


def test_expected_encoder_gradients_match_the_closed_form() -> None:
    model, r = _linear_vae()
    x = _images(16).double().div(255).float()
    xs = x.flatten(1).double().numpy()
    beta = 0.7
    got = estimators.expected_encoder_grads(
        model, x, beta, 1.0, draws=4000, generator=torch.Generator().manual_seed(3), chunk=2000
    )
    # Own formulas: recon = ||x - W z - b||^2 with z = mu + sigma eps; batch mean over B.
    b_ = xs.shape[0]
    mu = xs @ r["a"]
    s2 = np.exp(r["lv"])[None, :].repeat(b_, 0)
    resid = xs - mu @ r["w"].T - r["b"]
    g_mu = -2 * resid @ r["w"] / b_
    g_lv = s2 * (r["w"] ** 2).sum(0)[None, :] / b_  # d/dlogvar of sigma^2 ||W_j||^2
    g_rec = np.concatenate([g_mu, g_lv], 1)
    g_kl = beta * np.concatenate([mu, 0.5 * (s2 - 1)], 1) / b_
    n_rec, n_kl = np.linalg.norm(g_rec), np.linalg.norm(g_kl)
    cos = float((g_rec * g_kl).sum() / (n_rec * n_kl))
    assert math.isclose(got.norm_kl, n_kl, rel_tol=1e-5)
    assert math.isclose(got.norm_recon, n_rec, rel_tol=0.03)
    assert abs(got.cosine - cos) < 0.03
    # One draw is dominated by its noise: its norm overstates the expected pull.
    gen = torch.Generator().manual_seed(4)
    single = [
        estimators.expected_encoder_grads(model, x, beta, 1.0, draws=1, generator=gen).norm_recon
        for _ in range(30)
    ]
    assert np.mean(single) > n_rec


def _elbo_reference(model_ref: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """ELBO per image of the linear VAE with a N(x; Wz + b, 1/2) decoder, closed form."""
    mu = x @ model_ref["a"]
    s2 = np.exp(model_ref["lv"])
    resid = x - mu @ model_ref["w"].T - model_ref["b"]
    e_sse = (resid**2).sum(1) + (s2 * (model_ref["w"] ** 2).sum(0)).sum()
    kl = 0.5 * (mu**2 + s2 - 1 - np.log(s2)).sum(1)
    return -(e_sse + 0.5 * D * math.log(math.pi) + kl)


def _kl(model_ref: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    mu = x @ model_ref["a"]
    s2 = np.exp(model_ref["lv"])
    return 0.5 * (mu**2 + s2 - 1 - np.log(s2)).sum(1)


def test_iwae_and_elbo_from_the_same_draws() -> None:
    model, r = _linear_vae(logvar=-0.5)
    x = _images(8).double().div(255).float()
    nll_k, nll_1 = estimators.iwae_bounds(
        model, x, 20000, generator=torch.Generator().manual_seed(5), chunk=5000
    )
    ref = _elbo_reference(r, x.flatten(1).double().numpy())
    np.testing.assert_allclose(-nll_1.double().numpy(), ref, rtol=0, atol=0.05)
    # Jensen, per image and by construction: the IWAE bound is never below the ELBO.
    assert bool((nll_k <= nll_1).all())
    # The calibrated bound of a squared-error decoder: N(x; mean, sigma2 I), closed form.
    s2 = 0.03
    _, nll_cal = estimators.iwae_bounds(
        model, x, 20000, generator=torch.Generator().manual_seed(6), chunk=5000, sigma2=s2
    )
    e_sse = -(ref + 0.5 * D * math.log(math.pi)) - _kl(r, x.flatten(1).double().numpy())
    ref_cal = -(e_sse / (2 * s2) + 0.5 * D * math.log(2 * math.pi * s2)) - _kl(
        r, x.flatten(1).double().numpy()
    )
    np.testing.assert_allclose(-nll_cal.double().numpy(), ref_cal, rtol=0.01)
    # In the summary's iwae dict too, with as few draws as k = 2.
    out = iwae_estimate(model, _images(30), 2, seed=1)
    assert out["nll"] <= out["elbo_nll"] and out["bpd"] <= out["elbo_bpd"]


def test_both_scorings_from_one_pass_equal_separate_estimates() -> None:
    """The end of a run scores the IWAE draws at the decoder's own likelihood and at the
    calibrated sigma2 in one pass: each number is exactly that of a separate estimate."""
    model, _ = _linear_vae(logvar=-0.5)
    images = _images(30)
    both = iwae_estimates(model, images, 7, seed=3, chunk_images=8, scorings=(None, 0.03))
    assert both[0] == iwae_estimate(model, images, 7, seed=3, chunk_images=8)
    assert both[1] == iwae_estimate(model, images, 7, seed=3, chunk_images=8, sigma2=0.03)
    assert both[0]["nll"] != both[1]["nll"]


def test_val_row_averages_noise_draws() -> None:
    model, r = _linear_vae(logvar=0.0)
    u8 = _images(40)
    control = KLControl(1.0, RunShape(10, 100, D, M))
    xs = u8.flatten(1).double().div(255).numpy()
    mu = xs @ r["a"]
    s2 = np.exp(r["lv"])
    e_sse = ((xs - mu @ r["w"].T - r["b"]) ** 2).sum(1) + (s2 * (r["w"] ** 2).sum(0)).sum()
    ref = float(e_sse.mean())

    def sse(draws: int, seed: int) -> float:
        cfg = EvalConfig(noise_draws=draws, grad_batches=0, mutual_information=False)
        row, _ = evaluate(model, u8, control, 0, cfg, seed=seed, extras=False)
        return row["sse"]

    many = [sse(48, s) for s in range(3)]
    one = [sse(1, s) for s in range(8)]
    assert all(abs(v - ref) / ref < 0.05 for v in many), (many, one, ref)
    # The spread over seeds shrinks with the draws averaged.
    assert np.std(many) < np.std(one)


def test_mutual_information_uses_the_whole_split_by_default() -> None:
    model, _ = _linear_vae(logvar=-12.0)  # near-deterministic codes: I(x;z) reaches log N
    u8 = _images(1200)
    control = KLControl(1.0, RunShape(10, 100, D, M))
    cfg = EvalConfig(grad_batches=0, noise_draws=1)
    assert cfg.mi_images is None
    row, _ = evaluate(model, u8, control, 0, cfg)
    assert math.log(1200) - 0.05 < row["mi"] <= math.log(1200) + 1e-4
    capped, _ = evaluate(model, u8, control, 0, EvalConfig(grad_batches=0, mi_images=100))
    assert capped["mi"] <= math.log(100) + 1e-4


def test_spectrum_of_dynamically_binarised_data_is_the_binary_covariance() -> None:
    """Exact reference: enumerate every binary image each grey image can become (2^4 each)."""
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (300, 1, 2, 2), generator=g, dtype=torch.uint8)
    p = u8.flatten(1).double().numpy() / 255.0
    n, d = p.shape
    outcomes = np.array([[(k >> i) & 1 for i in range(d)] for k in range(2**d)], dtype=float)
    second = np.zeros((d, d))
    first = np.zeros(d)
    for row in p:
        w = np.prod(np.where(outcomes == 1, row, 1 - row), axis=1)  # P(outcome | image)
        second += (outcomes * w[:, None]).T @ outcomes
        first += w @ outcomes
    second, first = second / n, first / n
    cov_pop = second - np.outer(first, first)
    # The tool uses the unbiased (n - 1) covariance of the grey images; the Bernoulli part is
    # an expectation, so the two differ by Cov_grey / (n - 1) at most.
    ref = np.sort(np.linalg.eigvalsh(cov_pop))[::-1]
    got = pca_spectrum(u8, binarize="dynamic")
    np.testing.assert_allclose(got["eigenvalues"], ref, rtol=2 / n, atol=1e-12)
    assert math.isclose(got["total_variance"], float(np.trace(cov_pop)), rel_tol=2 / n)
    assert math.isclose(got["bernoulli_noise"], float((p * (1 - p)).sum(1).mean()), rel_tol=1e-12)
    grey = pca_spectrum(u8)
    assert got["total_variance"] > grey["total_variance"] + 0.9 * got["bernoulli_noise"]
