"""The KL term, the beta-VAE objective and the effective-beta bookkeeping.

The objective is Higgins et al. 2017; beta read as decoder variance is Rybkin et al. 2021.

beta must scale only the KL; ``recon_reduction=mean`` must multiply the canonical beta by the
pixel count D; and the logged beta_sum / beta_norm / sigma2_eff / beta_calib must follow their
formulas, both from :func:`effective_beta` and in a real run's metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import distributions as D

from vaesweep.config import (
    Config,
    ConstantKL,
    DataConfig,
    EvalConfig,
    GecoKL,
    LossConfig,
    MLPConfig,
    TrainConfig,
)
from vaesweep.control import KLControl, RunShape, build_control
from vaesweep.model import build_model
from vaesweep.objective import effective_beta, gaussian_kl, loss_terms
from vaesweep.objective.effective_beta import recon_scale
from vaesweep.objective.terms import LossTerms
from vaesweep.record.files import read_metrics_csv
from vaesweep.run import run_job


def test_gaussian_kl_matches_torch_per_dimension() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 7, generator=g, dtype=torch.float64) * 3
    logvar = torch.randn(64, 7, generator=g, dtype=torch.float64) * 4  # sigma from e^-6 to e^6
    kl = gaussian_kl(mu, logvar)
    ref = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0))
    assert kl.shape == (64, 7)
    torch.testing.assert_close(kl, ref, rtol=1e-12, atol=1e-12)
    # Zero exactly at the prior, positive elsewhere.
    assert torch.equal(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))
    assert bool((kl > 0).all())


def _model_and_batch(likelihood: str = "mse") -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=3, hidden=[16]), LossConfig(likelihood), (1, 6, 6))
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (8, 1, 6, 6), generator=g).double() / 255
    eps = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return model, x, eps


def _terms(model: torch.nn.Module, x: torch.Tensor, eps: torch.Tensor) -> LossTerms:
    mu, logvar = model.encode(x)
    params = model.decode(model.reparameterize(mu, logvar, eps))
    return loss_terms(x, params, mu, logvar, model.likelihood)


def test_loss_terms_units_and_elbo() -> None:
    model, x, eps = _model_and_batch("mse")
    terms = _terms(model, x, eps)
    mu, logvar = model.encode(x)
    mean = model.likelihood.mean(model.decode(model.reparameterize(mu, logvar, eps)))
    sse = ((mean - x) ** 2).flatten(1).sum(1)
    assert torch.equal(terms.sse, sse) and torch.equal(terms.recon, sse)
    torch.testing.assert_close(terms.kl, gaussian_kl(mu, logvar).sum(1), rtol=0, atol=0)
    torch.testing.assert_close(terms.elbo, -(terms.nll + terms.kl), rtol=0, atol=0)
    # For a likelihood in nats, recon is the NLL itself.
    model, x, eps = _model_and_batch("bernoulli")
    terms = _terms(model, x, eps)
    assert torch.equal(terms.recon, terms.nll)


def test_beta_scales_only_the_kl() -> None:
    model, x, eps = _model_and_batch("mse")
    decoder = [p for n, p in model.named_parameters() if n.startswith("decoder")]
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder")]
    grads: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    values: dict[float, float] = {}
    for beta in (0.01, 1.0, 37.0):
        model.zero_grad()
        terms = _terms(model, x, eps)
        # The objective the trainer minimises: the constant (plain beta-VAE) controller's.
        objective = build_control(ConstantKL(), beta, RunShape(10, 100, 36, 3)).objective(terms, 0)
        objective.backward()
        values[beta] = float(objective.detach())
        grads[beta] = (
            [p.grad.clone() for p in decoder],
            [p.grad.clone() for p in encoder],
        )
        kl_mean = float(terms.kl.mean().detach())
    # The objective differs by exactly delta_beta * mean KL.
    assert values[37.0] - values[0.01] == pytest.approx((37.0 - 0.01) * kl_mean, rel=1e-12)
    assert values[1.0] - values[0.01] == pytest.approx((1.0 - 0.01) * kl_mean, rel=1e-12)
    # The KL does not depend on the decoder: its gradients are identical for every beta.
    for a, b in zip(grads[0.01][0], grads[37.0][0]):
        assert torch.equal(a, b)
    # The encoder's gradient is affine in beta: g(beta) = g_rec + beta * g_kl.
    for g0, g1, g37 in zip(grads[0.01][1], grads[1.0][1], grads[37.0][1]):
        g_kl = (g1 - g0) / (1.0 - 0.01)
        torch.testing.assert_close(g37, g0 + (37.0 - 0.01) * g_kl, rtol=1e-8, atol=1e-10)
    assert any(float((g1 - g0).abs().max()) > 0 for g0, g1 in zip(grads[0.01][1], grads[1.0][1]))


def test_constant_control_objective_is_the_beta_vae_objective() -> None:
    model, x, eps = _model_and_batch("mse")
    terms = _terms(model, x, eps)
    shape = RunShape(10, 100, 36, 3)
    control = build_control(ConstantKL(), 0.25, shape)
    assert type(control) is KLControl
    # Higgins et al. 2017: mean reconstruction term + beta * mean KL (recon summed per image).
    expected = terms.recon.mean() + 0.25 * terms.kl.mean()
    assert torch.equal(control.objective(terms, 5), expected)
    assert control.beta_t(0) == control.beta_t(99) == 0.25


def test_mean_reduction_is_the_sum_objective_with_beta_times_d() -> None:
    model, x, eps = _model_and_batch("mse")
    terms = _terms(model, x, eps)
    d, b = 36, 0.3
    mean_ctl = KLControl(b, RunShape(10, 100, d, 3, recon_scale("mean", d)))
    sum_ctl = KLControl(b * d, RunShape(10, 100, d, 3, recon_scale("sum", d)))
    # mean(recon)/D + b KL = (mean(recon) + b D KL) / D: same minimiser, canonical beta = b*D.
    torch.testing.assert_close(
        mean_ctl.objective(terms, 0) * d, sum_ctl.objective(terms, 0), rtol=1e-13, atol=0
    )
    assert recon_scale("mean", d) == 1 / d and recon_scale("sum", d) == 1.0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_effective_beta_formulas(reduction: str) -> None:
    d, m, beta, mse = 784, 16, 0.5, 0.02
    scale = recon_scale(reduction, d)
    beta_sum = beta * (d if reduction == "mean" else 1)
    # mse likelihood: sigma2_eff = beta_sum / 2.
    eff = effective_beta(beta, scale, d, m, lambda bs: bs / 2.0, mse)
    assert eff.beta_sum == pytest.approx(beta_sum, rel=1e-15)
    assert eff.beta_norm == pytest.approx(beta_sum * m / d, rel=1e-15)
    assert eff.sigma2_eff == pytest.approx(beta_sum / 2, rel=1e-15)
    assert eff.beta_calib == pytest.approx(beta_sum / 2 / mse, rel=1e-15)
    # gaussian likelihood with sigma: sigma2_eff = beta_sum * sigma^2.
    sigma = 0.1
    eff = effective_beta(beta, scale, d, m, lambda bs: bs * sigma**2, mse)
    assert eff.sigma2_eff == pytest.approx(beta_sum * sigma**2, rel=1e-15)
    assert eff.beta_calib == pytest.approx(beta_sum * sigma**2 / mse, rel=1e-15)
    # No Gaussian reading: NaN, not a number that looks meaningful.
    eff = effective_beta(beta, scale, d, m, lambda bs: math.nan, mse)
    assert math.isnan(eff.sigma2_eff) and math.isnan(eff.beta_calib)
    assert math.isnan(effective_beta(beta, scale, d, m, lambda bs: bs, 0.0).beta_calib)


def test_geco_beta_sum_does_not_depend_on_recon_reduction() -> None:
    """GECO's objective ignores loss.recon_reduction, so its canonical beta must too."""
    d = 64
    cfg = GecoKL(kappa=0.1, lambda_init=2.0)
    sums = []
    for reduction in ("sum", "mean"):
        scale = recon_scale(reduction, d)
        control = build_control(cfg, 1.0, RunShape(5, 50, d, 4, scale))
        sums.append(effective_beta(control.beta_t(0), scale, d, 4, lambda bs: bs / 2, 0.01))
    assert sums[0].beta_sum == pytest.approx(d * 0.1**2 / 2.0, rel=1e-12)
    assert sums[1].beta_sum == pytest.approx(sums[0].beta_sum, rel=1e-12)
    # lambda_init None starts where beta_t is the user's beta in either convention.
    for reduction in ("sum", "mean"):
        scale = recon_scale(reduction, d)
        control = build_control(GecoKL(kappa=0.1), 0.7, RunShape(5, 50, d, 4, scale))
        assert control.beta_t(0) == pytest.approx(0.7, rel=1e-12)


def _tiny_config(**kw: object) -> Config:
    base: dict[str, object] = {
        "data": DataConfig(limit=200),
        "model": MLPConfig(latent_dim=4, hidden=[16]),
        "kl": ConstantKL(),
        "train": TrainConfig(epochs=1, batch_size=50, progress="off", device="cpu"),
        "eval": EvalConfig(iwae_samples=0, mi_images=50, grad_batches=1, n_recon=2, n_samples=8),
    }
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("likelihood", "sigma", "reduction"),
    [("mse", 1.0, "mean"), ("mse", 1.0, "sum"), ("gaussian", 0.2, "mean")],
)
def test_run_metrics_record_the_canonical_beta(
    tmp_path: Path, likelihood: str, sigma: float, reduction: str
) -> None:
    beta = 0.05
    cfg = _tiny_config(
        beta=beta, loss=LossConfig(likelihood=likelihood, sigma=sigma, recon_reduction=reduction)
    )
    summary = run_job(cfg, tmp_path / "run")
    assert summary["status"] == "completed", summary.get("error")
    rows = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    assert {r["split"] for r in rows} == {"train", "val"}
    d, m = 64, 4  # digits are 1 x 8 x 8
    beta_sum = beta * d if reduction == "mean" else beta
    for row in rows:
        assert row["beta_t"] == beta
        assert row["beta_sum"] == pytest.approx(beta_sum, rel=1e-12)
        assert row["beta_norm"] == pytest.approx(beta_sum * m / d, rel=1e-12)
        s2 = beta_sum / 2 if likelihood == "mse" else beta_sum * sigma**2
        assert row["sigma2_eff"] == pytest.approx(s2, rel=1e-6)
        assert row["beta_calib"] == pytest.approx(s2 / row["mse"], rel=1e-6)
        assert row["mse"] == pytest.approx(row["sse"] / d, rel=1e-12)
        assert row["elbo"] == pytest.approx(-(row["nll"] + row["kl"]), rel=1e-12)
    # The logged training loss is recon * scale + beta * KL per image.
    val = [r for r in rows if r["split"] == "val"][-1]
    scale = 1 / d if reduction == "mean" else 1.0
    assert val["loss"] == pytest.approx(scale * val["recon"] + beta * val["kl"], rel=1e-5)
