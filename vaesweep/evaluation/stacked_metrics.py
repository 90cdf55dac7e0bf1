"""Validation of K stacked members in one pass, each row the one its single run would write.

Generator order. Every single run evaluates with a generator seeded with the same ``seed``
and draws from it only numbers whose count depends on shapes the members share (images,
latent size, ``eval.*``), never on its weights; so all members would draw the same numbers
and one generator serves the stack. It draws them in the single run's order and shapes
(:func:`~vaesweep.evaluation.metrics.evaluate`): per validation batch, for each of
``eval.noise_draws`` draws, the Bernoulli pixels (``binarize=dynamic``) and then the
reparameterisation noise (B, M); then the mutual information's noise; then, per gradient
batch, its Bernoulli pixels and ``eval.grad_draws`` draws of noise in the chunks
:func:`~vaesweep.evaluation.estimators.expected_encoder_grads` takes. Member k therefore
scores exactly the draws its single run scores.

Speed. The draws are drawn first and then batched into the stacked forward: the encoder runs
once per batch (once per draw only when the pixels themselves are drawn) and the decoder
scores several draws of all members at once, within :data:`PASS_ELEMENTS`. The loss pass
runs stacked; the encoder-gradient norms too, except on the devices in
:data:`PER_MEMBER_GRADS` (the CPU), where those large compute-bound passes run per member in
parallel threads; the mutual information (a per-member N x N estimate,
:func:`~vaesweep.evaluation.estimators.mutual_information`) runs per member from the
generator state every member's single run is in at that point. Rows come from the single-run
:func:`~vaesweep.evaluation.metrics.metrics_row`, with statistics accumulated draw by draw as
the single run accumulates them (an objective such as free bits is not linear in the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaesweep.config import EvalConfig
from vaesweep.control.stacked import StackedControl
from vaesweep.evaluation import estimators
from vaesweep.evaluation.member_threads import map_members
from vaesweep.evaluation.metrics import metrics_row, to_unit
from vaesweep.evaluation.stacked_stats import StackedSplitStats
from vaesweep.model.stacked import StackedVAE
from vaesweep.model.vae import VAE
from vaesweep.objective.likelihood_base import Likelihood
from vaesweep.objective.stacked import (
    shared_likelihood,
    stacked_likelihood_terms,
    stacked_loss_terms,
)
from vaesweep.objective.terms import gaussian_kl

#: Most input elements (members x draws x images x pixels) one batched pass of the decoder
#: takes, by device type (others: ``"default"``); more draws go in further passes, and a pass
#: never holds less than one draw of all members. Measured on the busy 2-core CPU (default
#: validation of a digits stack of 8): with torch's default 2 threads few large passes win
#: (a whole 8-beta sweep validated in 3.2 s per epoch against 4.4 s per single run; 64K-element
#: passes were 2-15x slower), with 1 thread 64K-element passes were 1.6x faster than 4M.
PASS_ELEMENTS = {"cpu": 1 << 22, "default": 1 << 22}
#: Images per gradient batch, as :func:`~vaesweep.evaluation.metrics.evaluate` takes them.
GRAD_BATCH = 64
#: Draws per noise tensor of :func:`estimators.expected_encoder_grads` (its ``chunk``): the
#: stack draws the same shapes, so a member's noise is its single run's on every device.
GRAD_CHUNK: int = (estimators.expected_encoder_grads.__kwdefaults__ or {}).get("chunk", 8)

#: Device types where the encoder-gradient norms run member by member, with the single-run
#: code, members in parallel threads (:mod:`~vaesweep.evaluation.member_threads`): on the CPU
#: that is 2x faster than the batched pass, which stays for GPUs.
PER_MEMBER_GRADS = frozenset({"cpu"})

Rows = dict[int, tuple[dict[str, float], list[float]]]


@dataclass
class MemberShape:
    """What :func:`metrics_row` reads of a model: sizes and the member's likelihood."""

    n_pixels: int
    latent_dim: int
    likelihood: Likelihood


def member_shape(model: StackedVAE, k: int) -> MemberShape:
    return MemberShape(model.n_pixels, model.latent_dim, model.member_likelihood(k))


def draws_per_pass(k: int, b: int, n_pixels: int, draws: int, device: torch.device) -> int:
    """How many of ``draws`` draws of ``b`` images of K members one pass scores."""
    budget = PASS_ELEMENTS.get(device.type, PASS_ELEMENTS["default"])
    return max(1, min(draws, budget // max(1, k * b * n_pixels)))


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(i + size, total)) for i in range(0, total, size)]


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
) -> Rows:
    """Member k -> (row, KL per latent dim) for k in ``members``, as
    :func:`~vaesweep.evaluation.metrics.evaluate` with ``extras`` gives its single run."""
    was_training = model.training
    model.eval()
    device = images.device
    gen = torch.Generator(device=device).manual_seed(seed)
    likelihoods = model.member_likelihoods()
    shared = shared_likelihood(likelihoods)
    stats = StackedSplitStats(model.latent_dim)
    draws = max(1, int(cfg.noise_draws))
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    kept = 0
    for start in range(0, len(images), batch_size):
        u8 = images[start : start + batch_size]
        mu, logvar = _score_batch(
            model, u8, control, step, draws, binarize, gen, likelihoods, shared, stats
        )
        if cfg.mi_images is None or kept < cfg.mi_images:
            mus.append(mu)
            logvars.append(logvar)
            kept += mu.shape[1]
    rows: Rows = {}
    for k in members:
        member_stats = stats.member(k)
        row = metrics_row(member_stats, member_shape(model, k), control.controls[k], step)
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
        _grad_norms(model, images, control, step, cfg, binarize, gen, rows, likelihoods, shared)
    model.train(was_training)
    return rows


def _score_batch(
    model: StackedVAE,
    u8: torch.Tensor,
    control: StackedControl,
    step: int,
    draws: int,
    binarize: str,
    gen: torch.Generator,
    likelihoods: list[Likelihood],
    shared: Likelihood | None,
    stats: StackedSplitStats,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adds ``draws`` scorings of the uint8 batch ``u8`` (B, C, H, W) by every member to
    ``stats``; returns the encoder outputs (K, B, M) of the last draw (the single run keeps
    those for the mutual information)."""
    k_all, m, b = model.k, model.latent_dim, len(u8)
    dynamic = binarize == "dynamic"
    # The single run's draws, in its order: per draw, the pixels (dynamic) then the noise.
    pixels: list[torch.Tensor] = []
    noise: list[torch.Tensor] = []
    for _ in range(draws):
        if dynamic:
            pixels.append(to_unit(u8, binarize, gen))
        noise.append(torch.randn((b, m), generator=gen, device=u8.device))
    x = None if dynamic else to_unit(u8, binarize, None)
    mu = logvar = torch.empty(0)
    if x is not None:  # the pixels are the same for every draw: encode once
        mu, logvar = model.encode(x.expand(k_all, *x.shape))
    per_pass = draws_per_pass(k_all, b, model.n_pixels, draws, u8.device)
    for d0, d1 in _spans(draws, per_pass):
        d = d1 - d0
        eps = torch.stack(noise[d0:d1])  # (d, B, M)
        if x is None:
            xd = torch.stack(pixels[d0:d1]).flatten(0, 1)  # (d*B, C, H, W)
            xs = xd.expand(k_all, *xd.shape)
            mu, logvar = model.encode(xs)
            mus, logvars = mu, logvar
            z = model.reparameterize(mu, logvar, eps.flatten(0, 1))
        else:
            xs = x.expand(k_all, d, *x.shape).flatten(1, 2)
            mus = mu.unsqueeze(1).expand(k_all, d, b, m).flatten(1, 2)
            logvars = logvar.unsqueeze(1).expand(k_all, d, b, m).flatten(1, 2)
            z = model.reparameterize(mus, logvars, eps.flatten(0, 1))
        terms = stacked_loss_terms(xs, model.decode(z), mus, logvars, likelihoods, shared)
        for i in range(d):
            one = terms.images(i * b, (i + 1) * b)
            stats.add(one, control.objective(one, step), mus[:, i * b : (i + 1) * b])
    if x is None:
        mu, logvar = mu[:, -b:], logvar[:, -b:]
    return mu, logvar


def _grad_norms(
    model: StackedVAE,
    images: torch.Tensor,
    control: StackedControl,
    step: int,
    cfg: EvalConfig,
    binarize: str,
    gen: torch.Generator,
    rows: Rows,
    likelihoods: list[Likelihood],
    shared: Likelihood | None,
) -> None:
    """Mean over ``cfg.grad_batches`` batches of :func:`estimators.expected_encoder_grads`,
    every member at once."""
    g_rec: list[list[float]] = []
    g_kl: list[list[float]] = []
    g_cos: list[list[float]] = []
    scales = torch.tensor([c.shape.recon_scale for c in control.controls], device=images.device)
    betas = control.betas(step, scales)
    singles = (
        [model.member_model(k) for k in range(model.k)]
        if images.device.type in PER_MEMBER_GRADS
        else None
    )
    for i in range(cfg.grad_batches):
        x = to_unit(images[i * GRAD_BATCH : (i + 1) * GRAD_BATCH], binarize, gen)
        if len(x) == 0:
            break
        if singles is not None:
            n_rec, n_kl, cos = _expected_grads_per_member(
                singles, x, control, step, cfg.grad_draws, gen
            )
        else:
            n_rec, n_kl, cos = _expected_grads(
                model, x, scales, betas, cfg.grad_draws, gen, likelihoods, shared
            )
        g_rec.append(n_rec.tolist())
        g_kl.append(n_kl.tolist())
        g_cos.append(cos.tolist())
    if g_rec:
        for k, (row, _) in rows.items():
            row["grad_norm_recon"] = sum(r[k] for r in g_rec) / len(g_rec)
            row["grad_norm_kl"] = sum(r[k] for r in g_kl) / len(g_kl)
            row["grad_cos"] = sum(r[k] for r in g_cos) / len(g_cos)


def _expected_grads_per_member(
    singles: list[VAE],
    x: torch.Tensor,
    control: StackedControl,
    step: int,
    draws: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As :func:`_expected_grads`, each member by :func:`estimators.expected_encoder_grads`
    on its single model, from the generator state the stack is in (every member's single run
    draws the same noise), members in parallel threads; ``gen`` ends where one member's left
    it."""
    start = gen.get_state()
    ends: list[torch.Tensor] = []

    def one(k: int) -> estimators.EncoderGrads:
        own = torch.Generator(device=x.device)
        own.set_state(start)
        out = estimators.expected_encoder_grads(
            singles[k],
            x,
            control.controls[k].beta_t(step),
            control.controls[k].shape.recon_scale,
            draws=max(1, int(draws)),
            generator=own,
            chunk=GRAD_CHUNK,
        )
        if k == 0:
            ends.append(own.get_state())
        return out

    grads = map_members(one, range(len(singles)), x.device)
    gen.set_state(ends[0])
    return tuple(  # type: ignore[return-value]
        torch.tensor([getattr(g, name) for g in grads], dtype=torch.float64)
        for name in ("norm_recon", "norm_kl", "cosine")
    )


def _expected_grads(
    model: StackedVAE,
    x: torch.Tensor,
    scales: torch.Tensor,
    betas: torch.Tensor,
    draws: int,
    gen: torch.Generator,
    likelihoods: list[Likelihood],
    shared: Likelihood | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K,) norms of every member's E_eps[d recon / d(mu, logvar)] over ``draws`` draws and of
    d(beta * KL) / d(mu, logvar), and their cosine, on the batch x (B, C, H, W): member k's
    :func:`estimators.expected_encoder_grads` (the same draws, the same averaging)."""
    k_all, b = model.k, len(x)
    draws = max(1, int(draws))
    eps = torch.cat(
        [
            torch.randn((d1 - d0, b, model.latent_dim), generator=gen, device=x.device)
            for d0, d1 in _spans(draws, GRAD_CHUNK)
        ]
    )  # (draws, B, M)
    with torch.enable_grad():
        mu0, logvar0 = model.encode(x.expand(k_all, *x.shape))
        mu = mu0.detach().requires_grad_(True)
        logvar = logvar0.detach().requires_grad_(True)
        g_mu, g_lv = torch.zeros_like(mu), torch.zeros_like(logvar)
        per_pass = draws_per_pass(k_all, b, model.n_pixels, draws, x.device)
        for d0, d1 in _spans(draws, per_pass):
            d = d1 - d0
            z = model.reparameterize(mu.unsqueeze(1), logvar.unsqueeze(1), eps[d0:d1])
            x_rep = x.expand(k_all, d, *x.shape).flatten(1, 2)
            params = model.decode(z.flatten(1, 2))
            recon = stacked_likelihood_terms(x_rep, params, likelihoods, shared)[0]
            gm, gl = torch.autograd.grad((scales * recon.sum(1)).sum() / b, (mu, logvar))
            g_mu += gm
            g_lv += gl
        g_rec = torch.cat([g_mu, g_lv], -1).flatten(1) / draws  # (K, B * 2M)
        kl = gaussian_kl(mu, logvar).sum(-1).mean(1)  # (K,)
        g_kl = torch.cat(torch.autograd.grad((betas * kl).sum(), (mu, logvar)), -1).flatten(1)
    n_rec, n_kl = g_rec.norm(dim=1), g_kl.norm(dim=1)
    dot = (g_rec * g_kl).sum(1)
    both = (n_rec > 0) & (n_kl > 0)
    cos = torch.where(both, dot / (n_rec * n_kl), torch.full_like(dot, math.nan))
    return n_rec, n_kl, cos
