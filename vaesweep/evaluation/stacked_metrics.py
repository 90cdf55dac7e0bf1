"""Validation of K stacked members in one pass, each row the one its single run would write.

Every single run evaluates with a generator seeded with the same ``seed``, so all members
would draw the same Bernoulli pixels and the same noise: one generator serves the stack.
The loss pass and the encoder-gradient norms run stacked; the mutual information (a
per-member N x N estimate, :func:`~vaesweep.training.estimators.mutual_information`) runs per
member from the generator state every member's single run is in at that point. Rows come
from the single-run :func:`~vaesweep.evaluation.metrics.metrics_row`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaesweep.config import EvalConfig
from vaesweep.control.stacked import StackedControl
from vaesweep.evaluation import estimators
from vaesweep.evaluation.metrics import metrics_row, to_unit
from vaesweep.evaluation.stacked_stats import StackedSplitStats
from vaesweep.model.stacked import StackedVAE
from vaesweep.objective.likelihoods import Likelihood
from vaesweep.objective.stacked import shared_likelihood, stacked_loss_terms


@dataclass
class MemberShape:
    """What :func:`metrics_row` reads of a model: sizes and the member's likelihood."""

    n_pixels: int
    latent_dim: int
    likelihood: Likelihood


def member_shape(model: StackedVAE, k: int) -> MemberShape:
    return MemberShape(model.n_pixels, model.latent_dim, model.likelihoods[k])


@torch.no_grad()
def evaluate_stack(
    model: StackedVAE,
    images: torch.Tensor,
    control: StackedControl,
    step: int,
    cfg: EvalConfig,
    members: list[int],
    *,
    binarize: str = "none",
    seed: int = 0,
    batch_size: int = 1024,
) -> dict[int, tuple[dict[str, float], list[float]]]:
    """Member k -> (row, KL per latent dim) for k in ``members``, as
    :func:`~vaesweep.evaluation.metrics.evaluate` with ``extras`` gives its single run."""
    was_training = model.training
    model.eval()
    device, k_all = images.device, model.k
    gen = torch.Generator(device=device).manual_seed(seed)
    shared = shared_likelihood(list(model.likelihoods))
    stats = StackedSplitStats(model.latent_dim)
    mus, logvars, kept = [], [], 0
    for start in range(0, len(images), batch_size):
        x = to_unit(images[start : start + batch_size], binarize, gen)
        xs = x.expand(k_all, *x.shape)
        mu, logvar = model.encode(xs)
        eps = torch.randn(mu.shape[1:], generator=gen, device=device)
        params = model.decode(model.reparameterize(mu, logvar, eps.expand_as(mu)))
        terms = stacked_loss_terms(xs, params, mu, logvar, model.likelihoods, shared)
        stats.add(terms, control.objective(terms, step), mu)
        if cfg.mi_images is None or kept < cfg.mi_images:
            mus.append(mu)
            logvars.append(logvar)
            kept += mu.shape[1]
    rows = {}
    for k in members:
        member_stats = stats.member(k)
        row = metrics_row(member_stats, member_shape(model, k), control.controls[k], step)  # type: ignore[arg-type]
        rows[k] = (row, member_stats.kl_per_dim())
    if cfg.mutual_information and mus:
        mu_all = torch.cat(mus, dim=1)[:, : cfg.mi_images]
        logvar_all = torch.cat(logvars, dim=1)[:, : cfg.mi_images]
        before = gen.get_state()
        for k in members:
            gen.set_state(before)
            mi, marginal = estimators.mutual_information(mu_all[k], logvar_all[k], gen)
            rows[k][0].update(mi=mi, marginal_kl=marginal)
        if not members:  # keep the generator where the single runs' would be
            estimators.mutual_information(mu_all[0], logvar_all[0], gen)
    if cfg.grad_batches > 0:
        _grad_norms(model, images, control, step, cfg, binarize, gen, rows, shared)
    model.train(was_training)
    return rows


def _grad_norms(
    model: StackedVAE,
    images: torch.Tensor,
    control: StackedControl,
    step: int,
    cfg: EvalConfig,
    binarize: str,
    gen: torch.Generator,
    rows: dict[int, tuple[dict[str, float], list[float]]],
    shared: Likelihood | None,
) -> None:
    """Mean over ``cfg.grad_batches`` batches of :func:`estimators.encoder_grad_norms`."""
    g_rec, g_kl, g_cos = [], [], []
    scales = torch.tensor([c.shape.recon_scale for c in control.controls], device=images.device)
    betas = control.betas(step, scales)
    for i in range(cfg.grad_batches):
        x = to_unit(images[i * 64 : (i + 1) * 64], binarize, gen)
        if len(x) == 0:
            break
        eps = torch.randn((len(x), model.latent_dim), generator=gen, device=x.device)
        xs = x.expand(model.k, *x.shape)
        with torch.enable_grad():
            mu, logvar = model.encode(xs)
            mu = mu.detach().requires_grad_(True)
            logvar = logvar.detach().requires_grad_(True)
            z = model.reparameterize(mu, logvar, eps.expand_as(mu))
            terms = stacked_loss_terms(xs, model.decode(z), mu, logvar, model.likelihoods, shared)
            rec = torch.autograd.grad((scales * terms.recon.mean(1)).sum(), (mu, logvar))
            kl = torch.autograd.grad((betas * terms.kl.mean(1)).sum(), (mu, logvar))
        n_rec = sum(g.pow(2).sum((1, 2)) for g in rec).sqrt()
        n_kl = sum(g.pow(2).sum((1, 2)) for g in kl).sqrt()
        dot = sum((a * b).sum((1, 2)) for a, b in zip(rec, kl))
        g_rec.append(n_rec.tolist())
        g_kl.append(n_kl.tolist())
        g_cos.append((dot / (n_rec * n_kl)).tolist())
    if g_rec:
        for k, (row, _) in rows.items():
            row["grad_norm_recon"] = math.fsum(r[k] for r in g_rec) / len(g_rec)
            row["grad_norm_kl"] = math.fsum(r[k] for r in g_kl) / len(g_kl)
            row["grad_cos"] = math.fsum(r[k] for r in g_cos) / len(g_cos)
