"""Estimators of what the latent code carries: active units, I(x;z), the IWAE bound, gradients.

All take plain tensors (and, where needed, the model) and return numbers in nats per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vaesweep.model.vae import VAE
from vaesweep.objective.terms import gaussian_kl, loss_terms

LOG_2PI = math.log(2 * math.pi)
#: Burda et al. 2016: unit u is active if Cov_x(E_q[u]) > 0.01 (the prior has unit variance).
ACTIVE_UNIT_THRESHOLD = 1e-2


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums (a float32 sum over an epoch drifts); MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def active_units(mu_var: torch.Tensor) -> int:
    """Number of latent dims whose encoder-mean variance over the data exceeds 0.01."""
    return int((mu_var > ACTIVE_UNIT_THRESHOLD).sum())


def diag_gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dim; broadcasts."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


#: Elements of each (z rows, posteriors, M) temporary of :func:`mutual_information` (64 MB
#: in float32): rows and posteriors are taken in blocks that keep to it, however large N x M.
MI_BLOCK_ELEMENTS = 1 << 24


def mutual_information(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    chunk: int = 256,
) -> tuple[float, float]:
    """I_q(x; z) and the marginal KL(q(z) || p(z)) over N held-out images (nats).

    Uses the aggregate posterior q(z) = (1/N) sum_n q(z|x_n) (Hoffman & Johnson 2016) with one
    z_n ~ q(z|x_n) per image, as in He et al. 2019: ``I = mean_n[log q(z_n|x_n) - log q(z_n)]``,
    ``log q(z) = logsumexp_m log q(z|x_m) - log N``. The marginal KL is the rest of the rate,
    ``E_x KL(q(z|x)||p(z)) - I``. I is at most log N. mu, logvar: (N, M).

    At most ``chunk`` samples are scored per block, against as many posteriors as keep each
    temporary within :data:`MI_BLOCK_ELEMENTS`; the logsumexp over posterior blocks is
    combined exactly (``logaddexp``), so the blocks change rounding only.
    """
    n, m = mu.shape
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_q_cond = diag_gaussian_log_density(z, mu, logvar)
    cols = max(1, min(n, MI_BLOCK_ELEMENTS // max(m, 1)))
    rows = max(1, min(chunk, MI_BLOCK_ELEMENTS // (cols * max(m, 1))))
    log_q_marg = []
    for start in range(0, n, rows):
        zc = z[start : start + rows].unsqueeze(1)  # (r, 1, M) against a block of posteriors
        total: torch.Tensor | None = None
        for first in range(0, n, cols):
            dens = diag_gaussian_log_density(
                zc, mu[first : first + cols].unsqueeze(0), logvar[first : first + cols].unsqueeze(0)
            )  # (r, c)
            part = torch.logsumexp(dens, dim=1)
            total = part if total is None else torch.logaddexp(total, part)
        assert total is not None
        log_q_marg.append(total - math.log(n))
    mi = float((log_q_cond - torch.cat(log_q_marg)).mean())
    rate = float(gaussian_kl(mu, logvar).sum(1).mean())
    return mi, rate - mi


@torch.no_grad()
def iwae_nll(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    chunk: int = 50,
) -> torch.Tensor:
    """-L_k per image (nats): the importance-weighted bound of Burda et al. 2016.

    ``L_k = log (1/k) sum_i p(x, z_i) / q(z_i | x)``, z_i ~ q(z|x); L_1 is the ELBO and L_k
    increases with k towards log p(x). x: (B, C, H, W) -> (B,). See :func:`iwae_bounds`.
    """
    return iwae_bounds(model, x, k, generator, chunk)[0]


@torch.no_grad()
def iwae_bounds(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    chunk: int = 50,
    sigma2: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-L_k, -ELBO) per image (nats), both from the same k draws z_i ~ q(z|x).

    -L_k = -log mean_i w_i (Burda et al. 2016) and -ELBO = -mean_i log w_i, with
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x). Since log of a mean >= mean of logs
    (Jensen), L_k >= the ELBO holds for every image by construction, not only in expectation.
    Samples are drawn ``chunk`` at a time and combined with a running logsumexp. Runs the model
    in eval mode (a training-mode sigma-VAE likelihood would otherwise use, and update, batch
    statistics). ``sigma2``: score a squared-error decoder as N(x; mean, sigma2 I) instead of
    its own ``nll``. x: (B, C, H, W) -> two (B,) tensors.
    """
    return iwae_bounds_scored(model, x, k, generator, chunk, (sigma2,))[0]


#: Images per decoder call in the IWAE passes: a pass of 50 draws x 100 images decodes 5,000
#: images, and decoding them 512 at a time keeps the activations in cache (measured for the
#: Fashion-MNIST conv decoder on the 2-core CPU: 0.95 s instead of 1.76 s with 1 thread, 0.53 s
#: instead of 0.96 s with 2). Each image's decoding does not depend on the others.
DECODE_PIECE = 512


@torch.no_grad()
def iwae_bounds_scored(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    chunk: int = 50,
    scorings: Sequence[float | None] = (None,),
    interrupt: Callable[[], None] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`iwae_bounds` under several scorings of the same draws and decoder outputs, one
    (-L_k, -ELBO) pair per entry of ``scorings`` (None: the decoder's own ``nll``; a float:
    N(x; mean, sigma2 I)). Each pair equals a separate :func:`iwae_bounds` call with the same
    generator state; the encoder and decoder run once for all of them (without autograd).

    ``interrupt`` is called before each chunk of draws and may raise to abandon the pass (a
    stack's members compute this in threads, where Ctrl-C does not reach them)."""
    was_training = model.training
    model.eval()
    n = len(scorings)
    totals: list[torch.Tensor | None] = [None] * n
    acc = accumulation_dtype(x.device)
    mean_log_w = [torch.zeros(x.shape[0], device=x.device, dtype=acc) for _ in scorings]
    try:
        mu, logvar = model.encode(x)
        drawn = 0
        while drawn < k:
            if interrupt is not None:
                interrupt()
            c = min(chunk, k - drawn)
            eps = torch.randn((c, *mu.shape), generator=generator, device=x.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps  # (c, B, M)
            flat = z.flatten(0, 1)
            params = torch.cat(
                [
                    model.decode(flat[i : i + DECODE_PIECE])
                    for i in range(0, len(flat), DECODE_PIECE)
                ]
            )
            x_rep = x.unsqueeze(0).expand(c, *x.shape).flatten(0, 1)
            log_pz = diag_gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
            log_qz = diag_gaussian_log_density(z, mu, logvar)
            sse: torch.Tensor | None = None
            for i, sigma2 in enumerate(scorings):
                if sigma2 is None:
                    log_px = -model.likelihood.nll(params, x_rep).view(c, -1)
                else:
                    if sse is None:
                        sse = (model.likelihood.mean(params) - x_rep).pow(2).flatten(1).sum(1)
                    d = x[0].numel()
                    log_px = -(sse / (2 * sigma2) + 0.5 * d * math.log(2 * math.pi * sigma2))
                    log_px = log_px.view(c, -1)
                log_w_all = log_px + log_pz - log_qz
                mean_log_w[i] += log_w_all.to(acc).sum(0) / k
                log_w = torch.logsumexp(log_w_all, dim=0)
                total = totals[i]
                totals[i] = log_w if total is None else torch.logaddexp(total, log_w)
            drawn += c
    finally:
        model.train(was_training)
    out = []
    for total, mean in zip(totals, mean_log_w):
        assert total is not None
        nll_k = -(total - math.log(k))
        # Float rounding of the two accumulations must not undo the order Jensen guarantees.
        out.append((nll_k, torch.maximum(-mean.to(nll_k.dtype), nll_k)))
    return out


def encoder_grad_norms(
    model: VAE, x: torch.Tensor, eps: torch.Tensor, beta: float, recon_scale: float
) -> tuple[float, float]:
    """Norms of d(recon)/d(mu, logvar) and d(beta * KL)/d(mu, logvar) for one batch.

    Both per-image losses are averaged over the batch as in training; the norms are taken over
    the whole (B, 2M) encoder output. Their ratio is the exchange rate beta sets between the
    two terms: at convergence the slope of the rate-distortion curve is -beta (Alemi et al.
    2018).
    """
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        mu, logvar = model.encode(x)
        mu = mu.detach().requires_grad_(True)
        logvar = logvar.detach().requires_grad_(True)
        z = model.reparameterize(mu, logvar, eps)
        terms = loss_terms(x, model.decode(z), mu, logvar, model.likelihood)
        g_rec = torch.autograd.grad(recon_scale * terms.recon.mean(), (mu, logvar))
        g_kl = torch.autograd.grad(beta * terms.kl.mean(), (mu, logvar))
    model.train(was_training)
    norm = lambda gs: float(torch.sqrt(sum(g.pow(2).sum() for g in gs)))  # noqa: E731
    return norm(g_rec), norm(g_kl)


@dataclass(frozen=True)
class EncoderGrads:
    """Expected pulls on the encoder outputs (mu, logvar) of one batch, and their alignment."""

    #: || E_eps d(recon_scale * mean recon) / d(mu, logvar) || over the whole (B, 2M) output.
    norm_recon: float
    #: || d(beta * mean KL) / d(mu, logvar) || (the analytic KL has no sampling noise).
    norm_kl: float
    #: Cosine between the two: -1 when they cancel exactly, as at a stationary point.
    cosine: float


def expected_encoder_grads(
    model: VAE,
    x: torch.Tensor,
    beta: float,
    recon_scale: float,
    *,
    draws: int = 32,
    generator: torch.Generator | None = None,
    chunk: int = 8,
) -> EncoderGrads:
    """The two forces on the encoder outputs, averaged over ``draws`` reparameterisation draws.

    The gradient of the reconstruction through z = mu + sigma * eps is a Monte-Carlo estimate;
    one draw is dominated by its noise and its norm overstates the expected pull. Averaging
    over draws estimates E_eps[grad recon] (the residual noise shrinks as 1/sqrt(draws)).
    Where the encoder is at a stationary point of ``recon + beta * KL`` the two expected
    gradients cancel (cosine -1, norms equal) for every beta; beta sets *where* they balance,
    the point of the rate-distortion curve with slope dD/dR = -beta (Alemi et al. 2018).
    Both per-image losses are averaged over the batch as in training. x: (B, C, H, W).
    """
    was_training = model.training
    model.eval()
    draws = max(1, int(draws))
    with torch.enable_grad():
        mu0, logvar0 = model.encode(x)
        mu = mu0.detach().requires_grad_(True)
        logvar = logvar0.detach().requires_grad_(True)
        b = x.shape[0]
        g_mu = torch.zeros_like(mu)
        g_lv = torch.zeros_like(logvar)
        done = 0
        while done < draws:
            c = min(chunk, draws - done)
            eps = torch.randn((c, *mu.shape), generator=generator, device=x.device, dtype=mu.dtype)
            z = (mu + torch.exp(0.5 * logvar) * eps).flatten(0, 1)
            x_rep = x.unsqueeze(0).expand(c, *x.shape).flatten(0, 1)
            recon, _, _ = model.likelihood.terms(model.decode(z), x_rep)
            gm, gl = torch.autograd.grad(recon_scale * recon.sum() / b, (mu, logvar))
            g_mu += gm
            g_lv += gl
            done += c
        g_rec = torch.cat([g_mu, g_lv], 1) / draws
        kl = gaussian_kl(mu, logvar).sum(1).mean()
        g_kl = torch.cat(torch.autograd.grad(beta * kl, (mu, logvar)), 1)
    model.train(was_training)
    n_rec, n_kl = float(g_rec.norm()), float(g_kl.norm())
    dot = float((g_rec * g_kl).sum())
    cos = dot / (n_rec * n_kl) if n_rec > 0 and n_kl > 0 else math.nan
    return EncoderGrads(n_rec, n_kl, cos)
