"""Estimators of what the code carries: IWAE bound, I(x;z), marginal KL, active units, gradients.

References: Burda et al. 2016 (IWAE bound L_k, k-monotonicity, active units > 0.01),
Hoffman & Johnson 2016 and He et al. 2019 (aggregate-posterior MI estimator, I <= log N,
marginal KL = rate - I). Checks use fixed seeds, so they are deterministic; where a check is
about an expectation, the tolerance is a stated number of Monte-Carlo standard errors.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from vaesweep.config import DataConfig, LossConfig, MLPConfig
from vaesweep.data import load_splits
from vaesweep.evaluation import estimators
from vaesweep.evaluation.estimators import (
    ACTIVE_UNIT_THRESHOLD,
    accumulation_dtype,
    active_units,
    diag_gaussian_log_density,
    encoder_grad_norms,
    iwae_bounds_scored,
    iwae_nll,
    mutual_information,
)
from vaesweep.evaluation.metrics import SplitStats, to_unit
from vaesweep.model import VAE, build_model
from vaesweep.objective import gaussian_kl, loss_terms


@pytest.fixture(scope="module")
def trained() -> tuple[VAE, torch.Tensor]:
    """A small Gaussian-decoder VAE (sigma 0.1) fitted for 300 steps on digits; 50 val images."""
    torch.manual_seed(0)
    splits = load_splits(DataConfig(limit=600))
    model = build_model(
        MLPConfig(latent_dim=4, hidden=[64]), LossConfig("gaussian", sigma=0.1), splits.shape
    )
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    x_all = to_unit(splits.train.images, "none", None)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        x = x_all[torch.randint(0, len(x_all), (64,), generator=g)]
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=g)
        terms = loss_terms(
            x, model.decode(model.reparameterize(mu, logvar, eps)), mu, logvar, model.likelihood
        )
        loss = terms.recon.mean() + terms.kl.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, to_unit(splits.val.images[:50], "none", None)


def _log_weights(model: VAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log p(x, z) - log q(z|x) for z = mu + sigma * eps; eps (k, B, M) -> (k, B)."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        k, b = eps.shape[:2]
        params = model.decode(z.flatten(0, 1))
        log_px = -model.likelihood.nll(params, x.repeat(k, 1, 1, 1)).view(k, b)
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    return log_px + log_pz - log_qz


@pytest.mark.slow
def test_iwae_is_log_mean_exp_of_the_importance_weights(trained: tuple[VAE, torch.Tensor]) -> None:
    model, x = trained
    k = 40  # one chunk: the same draws can be replayed from the seed
    out = iwae_nll(model, x, k, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(
        (k, *x.shape[:1], model.latent_dim), generator=torch.Generator().manual_seed(7)
    )
    log_w = _log_weights(model, x, eps)
    expected = -(torch.logsumexp(log_w, 0) - math.log(k))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-3)
    # With the same draws, L_k >= the mean of its k one-sample ELBOs (Jensen), image by image.
    assert bool((-out >= log_w.mean(0) - 1e-4).all())
    assert float((-out - log_w.mean(0)).mean()) > 0.5


@pytest.mark.slow
def test_iwae_combines_chunks_exactly(trained: tuple[VAE, torch.Tensor]) -> None:
    model, x = trained
    whole = iwae_nll(model, x, 30, generator=torch.Generator().manual_seed(3), chunk=30)
    # 30 samples in chunks of 7: same draws in the same order, combined by logaddexp.
    chunked = iwae_nll(model, x, 30, generator=torch.Generator().manual_seed(3), chunk=7)
    g = torch.Generator().manual_seed(3)
    eps = torch.cat(
        [torch.randn((c, len(x), model.latent_dim), generator=g) for c in (7, 7, 7, 7, 2)]
    )
    ref = -(torch.logsumexp(_log_weights(model, x, eps), 0) - math.log(30))
    torch.testing.assert_close(chunked, ref, rtol=1e-5, atol=1e-3)
    assert float((whole - chunked).abs().mean()) < 5.0  # different draws, same quantity


@pytest.mark.slow
def test_iwae_bound_rises_with_k_above_the_elbo(trained: tuple[VAE, torch.Tensor]) -> None:
    """E[L_1] <= E[L_10] <= E[L_100] (Burda et al. 2016, theorem 1), on 50 images x 6 seeds.

    Each L_k estimate is unbiased for L_k; the mean gaps must exceed 4 standard errors of the
    seed-to-seed spread, so the ordering is not a Monte-Carlo accident.
    """
    model, x = trained
    reps = 6
    means = {
        k: torch.stack(
            [
                -iwae_nll(model, x, k, generator=torch.Generator().manual_seed(100 * k + s)).mean()
                for s in range(reps)
            ]
        )
        for k in (1, 10, 100)
    }
    for lo, hi in ((1, 10), (10, 100)):
        gap = means[hi] - means[lo]
        se = float(gap.std() / math.sqrt(reps))
        assert float(gap.mean()) > 4 * se > 0, (lo, hi, float(gap.mean()), se)


@pytest.mark.slow
def test_iwae_with_one_sample_is_the_elbo_in_expectation(trained: tuple[VAE, torch.Tensor]) -> None:
    """L_1 = log p(x|z) + log p(z) - log q(z|x); the ELBO uses the analytic KL instead.

    With the same z the two differ by (log q - log p)(z) - KL, whose mean over z ~ q is zero:
    over 50 images x 40 draws the mean difference must be within 4 standard errors of 0.
    """
    model, x = trained
    diffs = []
    for s in range(40):
        l1 = -iwae_nll(model, x, 1, generator=torch.Generator().manual_seed(s))
        eps = torch.randn((1, len(x), model.latent_dim), generator=torch.Generator().manual_seed(s))
        with torch.no_grad():
            mu, logvar = model.encode(x)
            params = model.decode(model.reparameterize(mu, logvar, eps[0]))
            elbo = loss_terms(x, params, mu, logvar, model.likelihood).elbo
        diffs.append(l1 - elbo)
    d = torch.cat(diffs).double()
    se = float(d.std() / math.sqrt(len(d)))
    assert se > 0
    assert abs(float(d.mean())) < 4 * se, (float(d.mean()), se)


def test_iwae_switches_a_training_mode_model_to_eval_and_back() -> None:
    torch.manual_seed(0)
    model = build_model(
        MLPConfig(latent_dim=2, hidden=[8]), LossConfig("gaussian_optimal"), (1, 4, 4)
    )
    model.train()
    x = torch.rand(6, 1, 4, 4)
    before = model.likelihood.running_mse.clone()
    iwae_nll(model, x, 5, generator=torch.Generator().manual_seed(0))
    assert model.training
    assert torch.equal(model.likelihood.running_mse, before)  # eval mode: no batch statistics


class NoFloat64(TorchDispatchMode):
    """Fails any operation that makes a float64 tensor, as MPS (Apple's GPUs) would."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        made = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if any(t.dtype == torch.float64 for t in made):
            raise AssertionError(f"float64 made by {func}")
        return out


def test_iwae_accumulates_without_float64_where_the_device_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MPS has no float64, and every run computes the IWAE bound at its end: on such a device
    the pass accumulates in float32 (the dtype :func:`accumulation_dtype` gives for MPS), with
    the same bounds to float32 precision."""
    assert accumulation_dtype(torch.device("mps")) == torch.float32
    assert accumulation_dtype(torch.device("cpu")) == torch.float64
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=2, hidden=[8]), LossConfig("mse"), (1, 4, 4))
    x = torch.rand(6, 1, 4, 4)
    expected = iwae_bounds_scored(model, x, 20, torch.Generator().manual_seed(0), 10, (None, 0.1))
    monkeypatch.setattr(estimators, "accumulation_dtype", lambda device: torch.float32)
    with NoFloat64():
        got = iwae_bounds_scored(model, x, 20, torch.Generator().manual_seed(0), 10, (None, 0.1))
    for (nll, elbo), (nll_64, elbo_64) in zip(got, expected):
        torch.testing.assert_close(nll, nll_64, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(elbo, elbo_64, rtol=1e-5, atol=1e-4)


def test_iwae_checks_for_an_interrupt_before_each_chunk_of_draws() -> None:
    """A stack's members compute their IWAE in threads that Ctrl-C does not reach: the pass
    asks ``interrupt`` before each chunk, and stops when it raises."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=2, hidden=[8]), LossConfig("mse"), (1, 4, 4))
    x = torch.rand(6, 1, 4, 4)
    calls: list[int] = []

    def interrupt() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        iwae_bounds_scored(model, x, 50, chunk=10, interrupt=interrupt)
    assert len(calls) == 3  # stopped at the third of five chunks
    calls.clear()
    iwae_bounds_scored(model, x, 20, chunk=10, interrupt=lambda: calls.append(1))
    assert len(calls) == 2


# ------------------------------------------------------------------------------ MI


def _linear_gaussian(
    a: float, s: float, n: int, m: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """x ~ N(0, I_m), q(z|x) = N(a x, s^2 I): I(x; z) = m/2 ln(1 + a^2 / s^2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, m, generator=g, dtype=torch.float64)
    return a * x, torch.full((n, m), math.log(s * s), dtype=torch.float64), g


@pytest.mark.parametrize(("a", "s", "m"), [(2.0, 0.5, 1), (1.0, 0.5, 2), (3.0, 0.2, 1)])
def test_mutual_information_on_a_linear_gaussian_encoder(a: float, s: float, m: int) -> None:
    true_mi = m * 0.5 * math.log(1 + a * a / (s * s))
    estimates = []
    for seed in range(4):
        mu, logvar, g = _linear_gaussian(a, s, 2000, m, seed)
        mi, marginal = mutual_information(mu, logvar, g)
        assert mi == pytest.approx(true_mi, rel=0.03)
        assert mi <= math.log(2000)
        # marginal KL = rate - MI exactly (the rate of these very posteriors) ...
        rate = float(gaussian_kl(mu, logvar).sum(1).mean())
        assert marginal == pytest.approx(rate - mi, rel=1e-12, abs=1e-12)
        # ... and close to KL(q(z) || p(z)) for q(z) ~ N(mean, a^2 var(x) + s^2), the
        # aggregate posterior of this sample (Gaussian up to sampling noise); the
        # tolerance is the MI tolerance it inherits.
        mean, var = mu.mean(0), mu.var(0, unbiased=False) + s * s
        closed = float(0.5 * (var + mean**2 - 1 - torch.log(var)).sum())
        assert marginal == pytest.approx(closed, abs=0.03 * true_mi + 0.005)
        estimates.append(mi)
    assert sum(estimates) / len(estimates) == pytest.approx(true_mi, rel=0.015)


def test_mutual_information_is_at_most_log_n() -> None:
    # Posteriors far narrower than their spacing: every z identifies its x, I -> log N.
    n = 500
    mu, logvar, g = _linear_gaussian(1.0, 1e-5, n, 2, 0)
    mi, _ = mutual_information(mu, logvar, g)
    assert mi <= math.log(n) + 1e-12
    assert mi == pytest.approx(math.log(n), abs=1e-3)
    # Posteriors equal to the prior for every x: no information, and all rate is marginal KL.
    mu = torch.zeros(n, 3, dtype=torch.float64)
    mi, marginal = mutual_information(mu, torch.zeros_like(mu), g)
    assert mi == pytest.approx(0.0, abs=1e-12) and marginal == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_chunking_is_exact() -> None:
    mu, logvar, _ = _linear_gaussian(1.5, 0.7, 700, 3, 1)
    a = mutual_information(mu, logvar, torch.Generator().manual_seed(5), chunk=64)
    b = mutual_information(mu, logvar, torch.Generator().manual_seed(5), chunk=1000)
    assert a[0] == pytest.approx(b[0], rel=1e-12) and a[1] == pytest.approx(b[1], rel=1e-12)


class LargestTemporary(TorchDispatchMode):
    """Records the most elements any operation's output had."""

    def __init__(self) -> None:
        super().__init__()
        self.most = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.most = max(self.most, t.numel())
        return out


def test_mutual_information_keeps_its_temporaries_to_the_block_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``model.latent_dim=100000`` asked 256 x N x M elements per temporary (13 GB on digits) and
    the run was killed: samples and posteriors are now scored in blocks of at most
    MI_BLOCK_ELEMENTS elements, with the same estimate."""
    mu, logvar, _ = _linear_gaussian(1.5, 0.7, 300, 3, 1)
    mu, logvar = mu.repeat(1, 4), logvar.repeat(1, 4)  # M = 12
    whole = mutual_information(mu, logvar, torch.Generator().manual_seed(5))
    for budget in (12 * 300 * 7, 12 * 50):  # 7 rows of all posteriors; 1 row of 50
        monkeypatch.setattr(estimators, "MI_BLOCK_ELEMENTS", budget)
        with LargestTemporary() as seen:
            got = mutual_information(mu, logvar, torch.Generator().manual_seed(5))
        assert seen.most <= max(budget, 300 * 12), (budget, seen.most)  # (N, M) inputs aside
        assert got[0] == pytest.approx(whole[0], rel=1e-9, abs=1e-12)
        assert got[1] == pytest.approx(whole[1], rel=1e-9, abs=1e-12)


def test_diag_gaussian_log_density_matches_torch() -> None:
    g = torch.Generator().manual_seed(0)
    z, mu, logvar = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(
        diag_gaussian_log_density(z, mu, logvar), ref, rtol=1e-12, atol=1e-12
    )


# ------------------------------------------------------------------------------ active units


def test_active_units_threshold() -> None:
    assert ACTIVE_UNIT_THRESHOLD == 0.01
    var = torch.tensor([0.0, 0.0099, 0.01, 0.0101, 0.5, 2.0], dtype=torch.float64)
    assert active_units(var) == 3  # strictly above 0.01
    # From encoder means via SplitStats: Cov_x(E_q[z_j]) in population form.
    stats = SplitStats(latent_dim=3)
    g = torch.Generator().manual_seed(0)
    mu = torch.stack(
        [
            torch.randn(400, generator=g) * 0.3,  # var ~ 0.09: active
            torch.randn(400, generator=g) * 0.05,  # var ~ 0.0025: inactive
            torch.full((400,), 2.0),  # constant: inactive however large its mean
        ],
        dim=1,
    )
    zeros = torch.zeros(400)
    terms = type("T", (), {})()  # a minimal stand-in carrying what SplitStats.add reads
    terms.recon, terms.nll, terms.sse = zeros, zeros, zeros
    terms.kl, terms.kl_per_dim = zeros, torch.zeros(400, 3)
    stats.add(terms, torch.tensor(0.0), mu)  # type: ignore[arg-type]
    var = stats.mu_variance()
    torch.testing.assert_close(var, mu.double().var(0, unbiased=False), rtol=1e-9, atol=1e-12)
    assert active_units(var) == 1


# ------------------------------------------------------------------------------ gradient norms


def test_encoder_grad_norms_kl_part_matches_the_closed_form() -> None:
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=3, hidden=[8]), LossConfig("mse"), (1, 4, 4))
    x = torch.rand(5, 1, 4, 4)
    eps = torch.randn(5, 3)
    g_rec, g_kl = encoder_grad_norms(model, x, eps, beta=2.0, recon_scale=1.0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    # d(beta * mean_b sum_j KL)/d mu = beta * mu / B; d/d logvar = beta * (e^logvar - 1) / (2B).
    expected = 2.0 / 5 * torch.sqrt((mu**2).sum() + (0.5 * (logvar.exp() - 1)).pow(2).sum())
    assert g_kl == pytest.approx(float(expected), rel=1e-5)
    # beta scales only the KL part; recon_scale only the reconstruction part.
    g_rec2, g_kl2 = encoder_grad_norms(model, x, eps, beta=6.0, recon_scale=0.25)
    assert g_kl2 == pytest.approx(3 * g_kl, rel=1e-6)
    assert g_rec2 == pytest.approx(0.25 * g_rec, rel=1e-6)
    assert g_rec > 0


@pytest.mark.parametrize(
    ("likelihood", "binarize", "dequantized", "offset"),
    [
        ("cbernoulli", "static", True, 1.0),  # density on binary pixels: two-level dequantisation
        ("mse", "dynamic", True, 1.0),
        ("bernoulli", "static", False, 0.0),  # a probability of the binary pixels as they are
        ("cbernoulli", "none", True, 8.0),  # density on grey levels: 256-level dequantisation
    ],
)
def test_iwae_bits_per_dim_dequantises_densities_on_binarised_pixels(
    monkeypatch: pytest.MonkeyPatch,
    likelihood: str,
    binarize: str,
    dequantized: bool,
    offset: float,
) -> None:
    """A density scored at the binary points {0, 1} is no probability (it can exceed 1 and
    give negative bits/dim); dequantised as y = (x + u) / 2 its bound is one of P(x)."""
    from vaesweep.evaluation import metrics as evaluate

    model = build_model(MLPConfig(latent_dim=2, hidden=[8]), LossConfig(likelihood), (1, 4, 4))
    images = (torch.arange(16 * 3, dtype=torch.int64).view(3, 1, 4, 4) * 37 % 256).to(torch.uint8)
    if binarize == "static":  # thresholded once when the data are loaded
        images = torch.where(images >= 128, 255, 0).to(torch.uint8)
    fed: list[torch.Tensor] = []
    real = evaluate.estimators.iwae_bounds_scored

    def spy(
        m: VAE, x: torch.Tensor, k: int, generator: torch.Generator, **kw: Any
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        fed.append(x.clone())
        return real(m, x, k, generator=generator, **kw)

    monkeypatch.setattr(evaluate.estimators, "iwae_bounds_scored", spy)
    out = evaluate.iwae_estimate(model, images, 3, binarize=binarize, seed=1)
    x = torch.cat(fed)
    assert out["dequantized"] is dequantized
    assert out["bpd"] == pytest.approx(out["nll"] / (16 * math.log(2)) + offset, rel=1e-12)
    if binarize == "none":
        assert torch.equal((x * 256).floor().to(torch.uint8), images)  # each level's own bin
    elif dequantized:
        # Every value lies in the half of [0, 1] of a binary pixel: [0, 1/2) or [1/2, 1).
        assert ((x >= 0) & (x < 1)).all()
        if binarize == "static":
            assert torch.equal(x >= 0.5, images == 255)
    else:
        assert set(x.unique().tolist()) <= {0.0, 1.0}
