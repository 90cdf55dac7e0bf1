"""Per-epoch metrics of one split: accumulate batch statistics, then turn them into a row.

The same :class:`SplitStats` is filled during training (the ``train`` row averages the epoch's
batches as they were trained) and by :func:`evaluate` on held-out images (the ``val`` row, with
z sampled from q(z|x) using fixed noise so epochs and runs compare like with like).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from vaesweep.config import EvalConfig
from vaesweep.control.base import KLControl
from vaesweep.evaluation import estimators
from vaesweep.model.vae import VAE
from vaesweep.objective.effective_beta import effective_beta
from vaesweep.objective.likelihood_base import Likelihood
from vaesweep.objective.terms import LossTerms, loss_terms

#: Seed of the validation noise shared by every run and by ``vaesweep eval``, so numbers
#: compare like with like.
EVAL_SEED = 2024


def to_unit(images: torch.Tensor, binarize: str, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float pixels in [0, 1]; ``dynamic`` resamples x ~ Bernoulli(x)."""
    x = images.to(torch.float32).mul_(1.0 / 255.0)
    if binarize == "dynamic":
        x = torch.bernoulli(x, generator=generator)
    return x


@dataclass
class SplitStats:
    """Running sums over the images of one pass (per-image values, so means are exact)."""

    latent_dim: int
    n: int = 0
    #: Sums kept as tensors on the run's device: no host sync per batch on a GPU.
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    kl_dim: torch.Tensor | None = None
    mu_sum: torch.Tensor | None = None
    mu_sq: torch.Tensor | None = None

    def add(self, terms: LossTerms, objective: torch.Tensor, mu: torch.Tensor) -> None:
        b = terms.recon.shape[0]
        batch = {
            "recon": terms.recon.sum(),
            "nll": terms.nll.sum(),
            "kl": terms.kl.sum(),
            "sse": terms.sse.sum(),
            "loss": objective * b,
        }
        acc = estimators.accumulation_dtype(mu.device)
        for k, v in batch.items():
            v = v.detach().to(acc)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        kl_dim = terms.kl_per_dim.detach().sum(0).to(acc)
        mu = mu.detach().to(acc)
        if self.kl_dim is None:
            self.kl_dim, self.mu_sum, self.mu_sq = kl_dim, mu.sum(0), mu.pow(2).sum(0)
        else:
            assert self.mu_sum is not None and self.mu_sq is not None
            self.kl_dim += kl_dim
            self.mu_sum += mu.sum(0)
            self.mu_sq += mu.pow(2).sum(0)
        self.n += b

    def mean(self, key: str) -> float:
        return float(self.sums[key]) / self.n if self.n else math.nan

    def kl_per_dim(self) -> list[float]:
        assert self.kl_dim is not None
        return (self.kl_dim / self.n).tolist()

    def mu_variance(self) -> torch.Tensor:
        """Variance over images of each encoder mean, Cov_x(E_q[z_j]) (population form)."""
        assert self.mu_sum is not None and self.mu_sq is not None
        m = self.mu_sum / self.n
        return (self.mu_sq / self.n - m.pow(2)).clamp(min=0)


class RowModel(Protocol):
    """What :func:`metrics_row` reads of a model: a :class:`VAE`, or one member of a stack."""

    @property
    def n_pixels(self) -> int: ...
    @property
    def latent_dim(self) -> int: ...
    @property
    def likelihood(self) -> Likelihood: ...


def metrics_row(
    stats: SplitStats, model: RowModel, control: KLControl, step: int
) -> dict[str, float]:
    """The contract's per-split numbers (README, "Run record") from accumulated statistics."""
    d = model.n_pixels
    mse = stats.mean("sse") / d
    kl = stats.mean("kl")
    beta_t = control.beta_t(step)
    eff = effective_beta(
        beta_t, control.shape.recon_scale, d, model.latent_dim, model.likelihood.sigma2_eff, mse
    )
    nll_calib = 0.5 * d * math.log(2 * math.pi * math.e * mse) if mse > 0 else math.nan
    row = {
        "loss": stats.mean("loss"),
        "recon": stats.mean("recon"),
        "nll": stats.mean("nll"),
        "kl": kl,
        "elbo": -(stats.mean("nll") + kl),
        "elbo_calib": -(nll_calib + kl),
        "sse": stats.mean("sse"),
        "mse": mse,
        "psnr": -10.0 * math.log10(mse) if mse > 0 else math.inf,
        "active_units": float(estimators.active_units(stats.mu_variance())),
        "beta_t": beta_t,
        "beta_sum": eff.beta_sum,
        "beta_norm": eff.beta_norm,
        "sigma2_eff": eff.sigma2_eff,
        "beta_calib": eff.beta_calib,
    }
    row.update(model.likelihood.extra_stats())
    return row


@torch.no_grad()
def evaluate(
    model: VAE,
    images: torch.Tensor,
    control: KLControl,
    step: int,
    cfg: EvalConfig,
    *,
    binarize: str = "none",
    seed: int = 0,
    batch_size: int = 1024,
    extras: bool = True,
) -> tuple[dict[str, float], list[float]]:
    """Metrics of a held-out split at the current step: (row, KL per latent dim).

    Each image is scored under ``cfg.noise_draws`` reparameterisation draws z ~ q(z|x) (and,
    with ``binarize="dynamic"``, as many Bernoulli draws of its pixels), and the row averages
    them: one draw on a small split can sit several standard deviations from its mean. Noise
    comes from a generator seeded with ``seed`` so every epoch sees the same draws. ``extras``
    adds I(x;z) and the marginal KL (over ``cfg.mi_images`` images, None = all) and the expected
    encoder gradients (:func:`estimators.expected_encoder_grads`).
    """
    was_training = model.training
    model.eval()
    device = images.device
    gen = torch.Generator(device=device).manual_seed(seed)
    stats = SplitStats(model.latent_dim)
    draws = max(1, int(getattr(cfg, "noise_draws", 1)))
    mi_limit = len(images) if cfg.mi_images is None else cfg.mi_images
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    for start in range(0, len(images), batch_size):
        u8 = images[start : start + batch_size]
        for _ in range(draws):
            x = to_unit(u8, binarize, gen)
            mu, logvar = model.encode(x)
            eps = torch.randn(mu.shape, generator=gen, device=device)
            params = model.decode(model.reparameterize(mu, logvar, eps))
            terms = loss_terms(x, params, mu, logvar, model.likelihood)
            stats.add(terms, control.objective(terms, step), mu)
        if extras and sum(len(m) for m in mus) < mi_limit:
            mus.append(mu)
            logvars.append(logvar)
    # Every image entered ``draws`` times: the means are over images and draws alike.
    row = metrics_row(stats, model, control, step)
    if extras:
        row.update(_extras(model, images, control, step, cfg, binarize, gen, mus, logvars))
    model.train(was_training)
    return row, stats.kl_per_dim()


def _extras(
    model: VAE,
    images: torch.Tensor,
    control: KLControl,
    step: int,
    cfg: EvalConfig,
    binarize: str,
    gen: torch.Generator,
    mus: list[torch.Tensor],
    logvars: list[torch.Tensor],
) -> dict[str, float]:
    out: dict[str, float] = {}
    if cfg.mutual_information and mus:
        mu = torch.cat(mus)[: cfg.mi_images]
        logvar = torch.cat(logvars)[: cfg.mi_images]
        out["mi"], out["marginal_kl"] = estimators.mutual_information(mu, logvar, gen)
    if cfg.grad_batches > 0:
        grads = []
        for i in range(cfg.grad_batches):
            x = to_unit(images[i * 64 : (i + 1) * 64], binarize, gen)
            if len(x) == 0:
                break
            grads.append(
                estimators.expected_encoder_grads(
                    model,
                    x,
                    control.beta_t(step),
                    control.shape.recon_scale,
                    draws=int(getattr(cfg, "grad_draws", 1)),
                    generator=gen,
                )
            )
        if grads:
            out["grad_norm_recon"] = sum(g.norm_recon for g in grads) / len(grads)
            out["grad_norm_kl"] = sum(g.norm_kl for g in grads) / len(grads)
            out["grad_cos"] = sum(g.cosine for g in grads) / len(grads)
    return out


@torch.no_grad()
def iwae_estimate(
    model: VAE,
    images: torch.Tensor,
    k: int,
    *,
    binarize: str = "none",
    seed: int = 0,
    chunk_images: int = 100,
    sigma2: float | None = None,
) -> dict[str, float | int | bool]:
    """The IWAE negative log-likelihood of uint8 ``images`` (N, C, H, W) and its bits/dim.

    ``nll`` is the mean over images of -L_k (Burda et al. 2016; :func:`estimators.iwae_nll`),
    nats per image. How the pixels are fed decides what it is a bound of:

    * probabilities of discrete pixels (discretised logistic on 8-bit levels; Bernoulli on
      binarised data): ``bpd = nll / (D ln 2)``;
    * continuous densities on grey levels: uniform dequantisation y = (x + u) / 256 (Theis et
      al. 2016), so ``bpd <= nll / (D ln 2) + 8``;
    * continuous densities on binarised pixels: dequantised the same way over two levels,
      y = (x + u) / 2, so ``bpd <= nll / (D ln 2) + 1`` (a density value at the binary points
      themselves is no probability and can be made arbitrarily large);
    * Bernoulli on grey levels is no density of the data: its bound is reported, bpd is NaN.

    All noise comes from one generator seeded with ``seed`` and images are taken
    ``chunk_images`` at a time, so the estimate is reproducible: the end of a run and
    ``vaesweep eval`` with the same images, k and seed give the same number. ``elbo_nll`` and
    ``elbo_bpd`` are the ELBO's -L_1 on the same inputs and the same k draws (the mean of the
    log weights), so ``nll <= elbo_nll`` holds by construction. Returns ``{"nll", "bpd",
    "elbo_nll", "elbo_bpd", "samples", "images", "dequantized"}``. ``sigma2``: score a
    squared-error decoder as N(x; mean, sigma2 I) (see :func:`iwae_estimates`).
    """
    scoring = (sigma2,)
    return iwae_estimates(
        model, images, k, binarize=binarize, seed=seed, chunk_images=chunk_images, scorings=scoring
    )[0]


def iwae_estimates(
    model: VAE,
    images: torch.Tensor,
    k: int,
    *,
    binarize: str = "none",
    seed: int = 0,
    chunk_images: int = 100,
    scorings: Sequence[float | None] = (None,),
    interrupt: Callable[[], None] | None = None,
) -> list[dict[str, float | int | bool]]:
    """:func:`iwae_estimate` under each of ``scorings`` (None: the decoder's own likelihood;
    a float sigma2: N(x; mean, sigma2 I)), from one pass of the model: the same images, noise
    and draws as separate calls, at the cost of one. ``interrupt``: see
    :func:`~vaesweep.evaluation.estimators.iwae_bounds_scored`.
    """
    device = images.device
    gen = torch.Generator(device=device).manual_seed(seed)
    binary = binarize != "none"
    bernoulli = model.likelihood.name == "bernoulli"
    discrete = model.likelihood.discrete or (binary and bernoulli)
    proper = discrete or not bernoulli
    levels = 2 if binary else 256
    nlls: list[list[torch.Tensor]] = [[] for _ in scorings]
    elbos: list[list[torch.Tensor]] = [[] for _ in scorings]
    for start in range(0, len(images), chunk_images):
        u8 = images[start : start + chunk_images]
        if discrete or not proper:
            x = to_unit(u8, binarize, gen)
        elif binary:
            u = torch.rand(u8.shape, generator=gen, device=device)
            x = (to_unit(u8, binarize, gen) + u) / 2.0
        else:
            u = torch.rand(u8.shape, generator=gen, device=device)
            x = (u8.float() + u) / 256.0
        bounds = estimators.iwae_bounds_scored(
            model, x, k, generator=gen, scorings=scorings, interrupt=interrupt
        )
        for i, (nll_k, nll_1) in enumerate(bounds):
            nlls[i].append(nll_k)
            elbos[i].append(nll_1)
    d = model.n_pixels
    offset = 0.0 if discrete else math.log2(levels)

    def bits(v: float) -> float:
        return v / (d * math.log(2)) + offset if proper else math.nan

    out: list[dict[str, float | int | bool]] = []
    for nll_parts, elbo_parts in zip(nlls, elbos):
        # Averaged in float64 on the host: MPS has no float64.
        nll = float(torch.cat(nll_parts).to("cpu", torch.float64).mean())
        elbo_nll = max(float(torch.cat(elbo_parts).to("cpu", torch.float64).mean()), nll)
        out.append(
            {
                "nll": nll,
                "bpd": bits(nll),
                "elbo_nll": elbo_nll,
                "elbo_bpd": bits(elbo_nll),
                "samples": k,
                "images": len(images),
                "dequantized": proper and not discrete,
            }
        )
    return out
