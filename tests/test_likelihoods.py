"""Every decoder likelihood against torch.distributions or a direct sum / integral.

Conventions checked (vaesweep.objective.likelihoods): ``nll`` is -log p(x|z) in nats summed
over pixels, ``recon`` is what is trained (SSE for ``mse``), ``sigma2_eff`` maps the canonical
beta to the Gaussian decoder variance (science notes 1.4, 2.2). Comparisons run in float64
where a formula is compared, so tolerances are at rounding level.
"""

from __future__ import annotations

import math

import pytest
import torch
from host_traffic import NoHostTraffic
from torch import distributions as D

from vaesweep.config import LossConfig
from vaesweep.objective.gaussian_likelihoods import (
    FixedGaussian,
    LearnedGaussian,
    OptimalGaussian,
    SquaredError,
)
from vaesweep.objective.likelihood_base import softclip_min
from vaesweep.objective.likelihoods import (
    HALF_BIN,
    Bernoulli,
    ContinuousBernoulli,
    DiscretizedLogistic,
    Laplace,
    build_likelihood,
)

SHAPE = (5, 3, 4, 4)  # B, C, H, W


def _params_and_x(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    """Decoder logits and 8-bit grey-level images in [0, 1] (including both edges)."""
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(SHAPE, generator=g, dtype=dtype) * 2.0
    x = torch.randint(0, 256, SHAPE, generator=g).to(dtype) / 255.0
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    return params, x


def _sum_pixels(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


def test_mse_recon_is_sse_exactly_and_nll_is_gaussian_with_variance_half() -> None:
    params, x = _params_and_x()
    lik = SquaredError()
    sse = ((torch.sigmoid(params) - x) ** 2).flatten(1).sum(1)
    assert torch.equal(lik.recon(params, x), sse)
    ref = -_sum_pixels(D.Normal(torch.sigmoid(params), math.sqrt(0.5)).log_prob(x))
    torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-12, atol=1e-10)
    # SSE + beta * KL is the ELBO of a Gaussian with sigma^2 = beta / 2 (science notes 1.4).
    assert lik.sigma2_eff(3.0) == 1.5
    assert lik.units == "sse"


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 2.0])
def test_fixed_gaussian_matches_normal(sigma: float) -> None:
    params, x = _params_and_x(1)
    lik = FixedGaussian(sigma)
    ref = -_sum_pixels(D.Normal(torch.sigmoid(params), sigma).log_prob(x))
    # log sigma is held as a float32 constant: agreement to float32 precision.
    torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lik.recon(params, x), lik.nll(params, x), rtol=0, atol=0)
    assert lik.sigma2_eff(2.0) == pytest.approx(2.0 * sigma**2, rel=1e-6)
    assert lik.extra_stats()["decoder_sigma"] == pytest.approx(sigma, rel=1e-6)


@pytest.mark.parametrize("lr_scale", [1.0, 10.0])
def test_learned_gaussian_sigma_is_a_parameter_with_gradient(lr_scale: float) -> None:
    params, x = _params_and_x(2, torch.float32)
    lik = LearnedGaussian(0.5, lr_scale)
    names = [n for n, _ in lik.named_parameters()]
    assert names == ["log_sigma_scaled"]
    assert float(lik.log_sigma_scaled.detach()) == pytest.approx(math.log(0.5) / lr_scale, rel=1e-6)
    loss = lik.nll(params, x).mean()
    loss.backward()
    grad = lik.log_sigma_scaled.grad
    assert grad is not None and torch.isfinite(grad) and float(grad.abs()) > 0
    # The gradient matches the closed form d/dlog(sigma) of SSE/(2 s^2) + D ln s, averaged
    # over the batch, times the soft-clip's slope and the parametrisation's factor.
    with torch.no_grad():
        raw = lr_scale * lik.log_sigma_scaled
        s2 = float(torch.exp(2 * lik.log_sigma()))
        sse = float(((torch.sigmoid(params) - x) ** 2).flatten(1).sum(1).mean())
        d = x[0].numel()
        slope = float(torch.sigmoid(raw + 6.0))
    assert float(grad) == pytest.approx((-sse / s2 + d) * slope * lr_scale, rel=1e-4)
    # It is the NLL of Normal(mean, exp(softclip(log sigma))).
    with torch.no_grad():
        sigma = float(torch.exp(softclip_min(raw, -6.0)))
        ref = -_sum_pixels(D.Normal(torch.sigmoid(params), sigma).log_prob(x))
        torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-5, atol=1e-4)
    # And learning it moves sigma toward the RMS error (one SGD step in the right direction).
    opt = torch.optim.SGD(lik.parameters(), lr=1e-3)
    before = float(lik.log_sigma().detach())
    opt.step()
    rms = math.sqrt(sse / d)
    assert (float(lik.log_sigma().detach()) - before) * (math.log(rms) - before) > 0


def test_learned_gaussian_lr_scale_multiplies_adams_step_on_log_sigma() -> None:
    """Adam's step does not depend on the gradient's scale, so ``lr_scale`` k moves log sigma
    k times as far per step: log sigma's own learning rate is k * lr."""
    params, x = _params_and_x(2, torch.float32)
    moves = []
    for k in (1.0, 10.0):
        lik = LearnedGaussian(1.0, k)
        opt = torch.optim.Adam(lik.parameters(), lr=1e-3)
        before = float(lik.log_sigma().detach())
        for _ in range(3):
            opt.zero_grad()
            lik.nll(params, x).mean().backward()
            opt.step()
        moves.append(float(lik.log_sigma().detach()) - before)
    assert moves[0] < 0 and moves[1] == pytest.approx(10 * moves[0], rel=1e-3)


def test_learned_gaussian_loads_checkpoints_that_held_log_sigma() -> None:
    """Checkpoints written before ``loss.sigma_lr_scale`` stored ``log_sigma_raw`` = log sigma."""
    lik = LearnedGaussian(1.0, 10.0)
    lik.load_state_dict({"log_sigma_raw": torch.tensor(-1.5)})
    assert float(lik.log_sigma_scaled.detach()) == pytest.approx(-0.15, rel=1e-6)
    assert float(lik.log_sigma().detach()) == pytest.approx(
        float(softclip_min(torch.tensor(-1.5), -6.0)), rel=1e-6
    )


def test_learned_gaussian_log_sigma_is_soft_clipped_at_minus_six() -> None:
    lik = LearnedGaussian(1.0)
    with torch.no_grad():
        lik.log_sigma_scaled.fill_(-50.0)
    assert float(lik.log_sigma().detach()) == pytest.approx(-6.0, abs=1e-12)
    with torch.no_grad():
        lik.log_sigma_scaled.fill_(2.0)
    assert float(lik.log_sigma().detach()) == pytest.approx(2.0, abs=1e-3)


def test_optimal_gaussian_uses_batch_mse_in_training_and_running_average_in_eval() -> None:
    params, x = _params_and_x(3)
    lik = OptimalGaussian(1.0).double()
    lik.train()
    mean = torch.sigmoid(params)
    mse = float(((mean - x) ** 2).mean())
    out = lik.nll(params, x)
    ref = -_sum_pixels(D.Normal(mean, math.sqrt(mse)).log_prob(x))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-8)
    # sigma^2 = MSE is the maximiser of the Gaussian likelihood over a shared sigma
    # (Rybkin et al. 2021): every other sigma on a grid gives a larger total NLL.
    best = float(out.sum())
    for factor in (0.5, 0.8, 0.95, 0.99, 1.01, 1.05, 1.25, 2.0):
        other = FixedGaussian(math.sqrt(mse) * factor).nll(params, x).sum()
        assert float(other) > best
    # ... and there its derivative in log sigma vanishes: -SSE/sigma^2 + B*D = 0.
    sse_total = float(((mean - x) ** 2).sum())
    assert -sse_total / mse + x.numel() == pytest.approx(0.0, abs=1e-8)
    # The first batch sets the running MSE; later ones update it with rate 0.1.
    assert float(lik.running_mse) == pytest.approx(mse, rel=1e-12)
    params2, x2 = _params_and_x(4)
    mse2 = float(((torch.sigmoid(params2) - x2) ** 2).mean())
    lik.nll(params2, x2)
    running = 0.9 * mse + 0.1 * mse2
    assert float(lik.running_mse) == pytest.approx(running, rel=1e-12)
    # Eval mode: the running average is the variance, and evaluation changes nothing.
    lik.eval()
    ev = lik.nll(params2, x2)
    ref_eval = -_sum_pixels(D.Normal(torch.sigmoid(params2), math.sqrt(running)).log_prob(x2))
    torch.testing.assert_close(ev, ref_eval, rtol=1e-10, atol=1e-8)
    assert float(lik.running_mse) == pytest.approx(running, rel=1e-12)
    # Its Gaussian reading: sigma2_eff = beta * sigma^2 = beta * running MSE.
    assert lik.sigma2_eff(2.0) == pytest.approx(2.0 * running, rel=1e-9)


def test_optimal_gaussian_before_any_batch_uses_sigma() -> None:
    params, x = _params_and_x(5)
    lik = OptimalGaussian(0.3).double().eval()
    ref = -_sum_pixels(D.Normal(torch.sigmoid(params), 0.3).log_prob(x))
    torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-6, atol=1e-6)


def test_optimal_gaussian_log_sigma_is_bounded_below_for_a_perfect_fit() -> None:
    x = torch.full((2, 1, 3, 3), 0.5, dtype=torch.float64)
    params = torch.full_like(x, 1e-9)  # sigmoid -> 0.5 + 2.5e-10: MSE ~ 6e-20
    lik = OptimalGaussian(1.0).double().train()
    out = lik.nll(params, x)
    ref = -_sum_pixels(D.Normal(torch.sigmoid(params), math.exp(-6.0)).log_prob(x))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    assert torch.isfinite(out).all()


def test_bernoulli_matches_torch_with_logits_on_binary_pixels() -> None:
    params, x = _params_and_x(6)
    xb = (x > 0.5).to(x.dtype)
    ref = -_sum_pixels(D.Bernoulli(logits=params).log_prob(xb))
    torch.testing.assert_close(Bernoulli().nll(params, xb), ref, rtol=1e-12, atol=1e-10)
    # Probabilities of the two outcomes sum to one per pixel.
    one_pixel = params[:, :1, :1, :1]
    p1 = torch.exp(-Bernoulli().nll(one_pixel, torch.ones_like(one_pixel)))
    p0 = torch.exp(-Bernoulli().nll(one_pixel, torch.zeros_like(one_pixel)))
    torch.testing.assert_close(p0 + p1, torch.ones_like(p0), rtol=0, atol=1e-12)


def test_continuous_bernoulli_matches_torch_where_torch_is_valid() -> None:
    # torch's float64 version clamps probabilities only at 1e-16 or so: valid for |eta| < 30.
    params, x = _params_and_x(7)
    lik = ContinuousBernoulli()
    ref = -_sum_pixels(D.ContinuousBernoulli(logits=params).log_prob(x))
    torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(
        lik.mean(params), D.ContinuousBernoulli(logits=params).mean, rtol=1e-8, atol=1e-9
    )


def _simpson(values: torch.Tensor, grid: torch.Tensor) -> float:
    h = float(grid[1] - grid[0])
    inner = 4 * values[1:-1:2].sum() + 2 * values[2:-1:2].sum()
    return float(h / 3 * (values[0] + values[-1] + inner))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_continuous_bernoulli_is_normalised_for_saturated_logits(dtype: torch.dtype) -> None:
    # The density integrates to 1 and its mean is the integral of x p(x), for logits far into
    # saturation (float32 torch.distributions gives 0.80 at |eta| = 20 and 0.53 at 30) and on
    # both sides of the Taylor switch at |eta| = 0.1. Simpson on a fine grid in float64; the
    # density decays over 1/|eta|, so 4001 nodes keep Simpson exact to ~1e-7 at |eta| = 100.
    lik = ContinuousBernoulli()
    grid = torch.linspace(0.0, 1.0, 4001, dtype=torch.float64)
    for logit in (
        -100.0,
        -61.0,
        -30.0,
        -20.0,
        -4.0,
        -0.1,
        -0.05,
        -1e-3,
        0.0,
        2e-3,
        0.1,
        1.5,
        20.0,
        100.0,
    ):
        p = torch.full((len(grid), 1, 1, 1), logit, dtype=dtype)
        dens = torch.exp(-lik.nll(p, grid.to(dtype).view(-1, 1, 1, 1)).double())
        assert _simpson(dens, grid) == pytest.approx(
            1.0, abs=2e-4 if dtype == torch.float32 else 1e-6
        ), logit
        mean = float(lik.mean(p[:1]).double())
        assert mean == pytest.approx(_simpson(dens * grid, grid), abs=2e-4), logit


def test_continuous_bernoulli_agrees_with_float64_closed_form_and_has_finite_gradients() -> None:
    # Independent reference: log C = log(eta / tanh(eta / 2)), mean = 1/(1 - e^-eta) - 1/eta,
    # evaluated in float64 away from 0 (where both are exact to rounding).
    eta64 = torch.cat([torch.linspace(-100, -0.2, 200), torch.linspace(0.2, 100, 200)]).double()
    x = torch.rand(len(eta64), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref_nll = (
        torch.nn.functional.softplus(eta64) - x * eta64 - torch.log(eta64 / torch.tanh(eta64 / 2))
    )
    ref_mean = 1 / (1 - torch.exp(-eta64)) - 1 / eta64
    eta = eta64.float().view(-1, 1, 1, 1).requires_grad_()
    lik = ContinuousBernoulli()
    nll = lik.nll(eta, x.float().view(-1, 1, 1, 1))
    torch.testing.assert_close(nll.double(), ref_nll, rtol=1e-5, atol=1e-4)
    mean = lik.mean(eta).flatten()
    torch.testing.assert_close(mean.double(), ref_mean, rtol=1e-5, atol=1e-6)
    (nll.sum() + mean.sum()).backward()
    assert eta.grad is not None and torch.isfinite(eta.grad).all()


@pytest.mark.parametrize("scale", [0.05, 0.5, 1.0])
def test_laplace_matches_torch(scale: float) -> None:
    params, x = _params_and_x(8)
    lik = Laplace(scale)
    ref = -_sum_pixels(D.Laplace(torch.sigmoid(params), scale).log_prob(x))
    torch.testing.assert_close(lik.nll(params, x), ref, rtol=1e-12, atol=1e-10)
    assert math.isnan(lik.sigma2_eff(1.0))


def _dlogistic_reference(mu: torch.Tensor, s: float, x: torch.Tensor) -> torch.Tensor:
    """log P(x) in float64 from CDF (below the mean) or survival-function (above) differences.

    F(v) = sigmoid((v - mu) / s); interior bins F(x + h) - F(x - h), written as
    S(x - h) - S(x + h) with S = 1 - F = sigmoid(-(v - mu) / s) above the mean so neither form
    cancels; the black and white levels take the whole tails.
    """
    a = (x - mu + HALF_BIN) / s
    b = (x - mu - HALF_BIN) / s
    mid = torch.where(
        x > mu, torch.sigmoid(-b) - torch.sigmoid(-a), torch.sigmoid(a) - torch.sigmoid(b)
    )
    p = torch.where(
        x < HALF_BIN, torch.sigmoid(a), torch.where(x > 1 - HALF_BIN, torch.sigmoid(-b), mid)
    )
    return torch.log(p)


@pytest.mark.parametrize("sigma", [0.002, 0.02, 0.2])
@pytest.mark.parametrize("mean", [0.0005, 0.1, 0.5, 0.93])
def test_discretized_logistic_is_a_distribution_over_256_levels(sigma: float, mean: float) -> None:
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    lik = DiscretizedLogistic(1, sigma).double()
    s = float(torch.exp(softclip_min(lik.log_scale.detach(), -7.0)))
    logit = math.log(mean / (1 - mean))
    params = torch.full((256, 1, 1, 1), logit, dtype=torch.float64)
    with torch.no_grad():
        log_p = -lik.nll(params, levels.view(-1, 1, 1, 1))
    # Probabilities of the 256 grey levels of one pixel sum to one.
    assert float(torch.exp(log_p).sum()) == pytest.approx(1.0, abs=1e-12)
    # Each matches the direct CDF difference, in log space (also far in the tails).
    ref = _dlogistic_reference(torch.tensor(mean, dtype=torch.float64), s, levels)
    finite = torch.isfinite(ref)
    assert finite.sum() > 200
    torch.testing.assert_close(log_p[finite], ref[finite], rtol=1e-9, atol=1e-9)


def test_discretized_logistic_float32_tail_is_not_floored() -> None:
    """A grey level far above the predicted mean must get its tiny probability, not 1e-12.

    (The one-sided CDF difference used to cancel there and clamp P at 1e-12 with no gradient.)
    """
    lik = DiscretizedLogistic(1, 0.01)
    s = float(torch.exp(softclip_min(lik.log_scale.detach(), -7.0)))
    mean = 0.1
    params = torch.full((3, 1, 1, 1), math.log(mean / (1 - mean)), requires_grad=True)
    x = torch.tensor([0.4, 0.6, 0.8]).view(-1, 1, 1, 1)
    nll = lik.nll(params, x)
    ref = -_dlogistic_reference(torch.tensor(mean, dtype=torch.float64), s, x.double().flatten())
    torch.testing.assert_close(nll.double(), ref, rtol=1e-5, atol=1e-3)
    assert float(nll.detach().min()) > 40.0
    nll.sum().backward()
    assert params.grad is not None and bool((params.grad < 0).all())  # pull the mean up


def test_discretized_logistic_multichannel_sums_pixels_and_has_one_scale_per_channel() -> None:
    params, x = _params_and_x(9)
    lik = DiscretizedLogistic(3, 0.1).double()
    assert tuple(lik.log_scale.shape) == (1, 3, 1, 1)
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([-3.0, -2.0, -4.0], dtype=torch.float64).view(1, 3, 1, 1))
        s = torch.exp(softclip_min(lik.log_scale, -7.0))
        out = lik.nll(params, x)
    mu = torch.sigmoid(params)
    ref = torch.zeros(SHAPE[0], dtype=torch.float64)
    for c in range(3):
        ref -= _sum_pixels(_dlogistic_reference(mu[:, c : c + 1], float(s[0, c]), x[:, c : c + 1]))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-8)
    assert lik.discrete and math.isnan(lik.sigma2_eff(1.0))


def test_build_likelihood_names_and_sigma() -> None:
    expected = {
        "mse": SquaredError,
        "gaussian": FixedGaussian,
        "gaussian_learned": LearnedGaussian,
        "gaussian_optimal": OptimalGaussian,
        "bernoulli": Bernoulli,
        "cbernoulli": ContinuousBernoulli,
        "laplace": Laplace,
        "dlogistic": DiscretizedLogistic,
    }
    for name, cls in expected.items():
        lik = build_likelihood(LossConfig(likelihood=name, sigma=0.25), channels=3)
        assert type(lik) is cls and lik.name == name
    assert build_likelihood(LossConfig(likelihood="gaussian", sigma=0.25), 1).sigma2_eff(
        4.0
    ) == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["mse", "gaussian", "gaussian_learned", "gaussian_optimal"])
def test_training_terms_stay_on_the_device(name: str) -> None:
    """A training step's likelihood terms neither read a value back nor copy a tensor from
    the host: the likelihood, the batch and the decoder output on the ``meta`` device."""
    lik = build_likelihood(LossConfig(likelihood=name, sigma=0.25), channels=3).to("meta")
    lik.train()
    params, x = (t.to("meta") for t in _params_and_x(dtype=torch.float32))
    with NoHostTraffic():
        for step in range(2):  # the optimal-variance model: its first batch, then an update
            recon, nll, sse = lik.terms(params + step, x)
    assert recon.shape == nll.shape == sse.shape == (SHAPE[0],)
