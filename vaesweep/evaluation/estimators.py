"""Estimators of what the latent code carries: active units, I(x;z), the IWAE bound, gradients.

All take plain tensors (and, where needed, the model) and return numbers in nats per image.
"""

from __future__ import annotations

import math

import torch

from vaesweep.objective.terms import gaussian_kl, loss_terms

LOG_2PI = math.log(2 * math.pi)
#: Burda et al. 2016: unit u is active if Cov_x(E_q[u]) > 0.01 (the prior has unit variance).
ACTIVE_UNIT_THRESHOLD = 1e-2


def active_units(mu_var: torch.Tensor) -> int:
    """Number of latent dims whose encoder-mean variance over the data exceeds 0.01."""
    return int((mu_var > ACTIVE_UNIT_THRESHOLD).sum())


def diag_gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dim; broadcasts."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


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
    """
    n = mu.shape[0]
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_q_cond = diag_gaussian_log_density(z, mu, logvar)
    log_q_marg = []
    for start in range(0, n, chunk):
        zc = z[start : start + chunk].unsqueeze(1)  # (c, 1, M) against all N posteriors
        dens = diag_gaussian_log_density(zc, mu.unsqueeze(0), logvar.unsqueeze(0))  # (c, N)
        log_q_marg.append(torch.logsumexp(dens, dim=1) - math.log(n))
    mi = float((log_q_cond - torch.cat(log_q_marg)).mean())
    rate = float(gaussian_kl(mu, logvar).sum(1).mean())
    return mi, rate - mi


@torch.no_grad()
def iwae_nll(
    model: torch.nn.Module,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    chunk: int = 50,
) -> torch.Tensor:
    """-L_k per image (nats): the importance-weighted bound of Burda et al. 2016.

    ``L_k = log (1/k) sum_i p(x, z_i) / q(z_i | x)``, z_i ~ q(z|x); L_1 is the ELBO and L_k
    increases with k towards log p(x). Samples are drawn ``chunk`` at a time and combined
    with a running logsumexp. x: (B, C, H, W) -> (B,). Runs the model in eval mode (a
    training-mode sigma-VAE likelihood would otherwise use, and update, batch statistics).
    """
    was_training = model.training
    model.eval()
    try:
        mu, logvar = model.encode(x)
        total: torch.Tensor | None = None
        drawn = 0
        while drawn < k:
            c = min(chunk, k - drawn)
            eps = torch.randn((c, *mu.shape), generator=generator, device=x.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps  # (c, B, M)
            params = model.decode(z.flatten(0, 1))
            x_rep = x.unsqueeze(0).expand(c, *x.shape).flatten(0, 1)
            log_px = -model.likelihood.nll(params, x_rep).view(c, -1)
            log_pz = diag_gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
            log_qz = diag_gaussian_log_density(z, mu, logvar)
            log_w = torch.logsumexp(log_px + log_pz - log_qz, dim=0)
            total = log_w if total is None else torch.logaddexp(total, log_w)
            drawn += c
    finally:
        model.train(was_training)
    assert total is not None
    return -(total - math.log(k))


def encoder_grad_norms(
    model: torch.nn.Module, x: torch.Tensor, eps: torch.Tensor, beta: float, recon_scale: float
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
