"""The reading's short answers to the three questions vaesweep exists for (README, first
paragraph): is scaling the KL sound, what does β do to training (the gradient view
included), does a small β trade a smooth latent space for reconstruction; then which β to
pick (:mod:`~vaesweep.report.reading.pick`).

The answers rest on β as the Lagrange multiplier of a rate constraint (Higgins et al. 2017,
"β-VAE"), the rate-distortion plane whose slope is -β (Alemi et al. 2018, "Fixing a Broken
ELBO"), β as the decoder noise variance (Lucas et al. 2019, "Don't Blame the ELBO!"; Rybkin et
al. 2021, "Simple and Effective VAE Training with Calibrated Decoders") and the split of the
rate into information and prior mismatch (Hoffman & Johnson 2016, "ELBO surgery").
"""

from __future__ import annotations

import numpy as np

from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.numbers import fmt, fmt_int
from vaesweep.report.reading.phrases import Groups, at, nats, ok
from vaesweep.report.reading.pick import pick

#: A cosine of the two expected encoder gradients at or below this reads as "balanced".
BALANCED_COS = -0.9


def build_questions(G: Groups, ends: tuple[str, str] | None) -> list[tuple[str, str]]:
    """(question, answer) pairs: the three questions of the README, each answered directly
    with the runs' numbers (the first three need two constant-β ends), then what to pick."""
    qs = []
    q1 = "Is scaling the KL term sound, or does it drop the KL?"
    q2 = "What does β do to training, and how should it be read in terms of gradient descent?"
    q3 = (
        "Does a smaller β care more about reconstruction than about a smooth, "
        "well-structured latent space?"
    )
    q4 = "What should I pick?"
    if ends:
        lo, hi = ends
        L, H = G.bname(lo), G.bname(hi)
        rows = G.by_beta()
        kl = rows["kl_mean"].to_numpy(dtype=float)
        mono = bool(np.all(np.diff(kl) <= 0))
        a1 = (
            "It is sound: β is the Lagrange weight on the information in z (Higgins et al. 2017), "
            "and each β picks one point of the rate–distortion curve (Alemi et al. 2018). Here the "
            f"rate {'fell monotonically' if mono else 'did not fall monotonically (see the rate–distortion plane)'} "
            f"from {fmt(G.v(lo, 'kl'))} nats {at(L)} to {fmt(G.v(hi, 'kl'))} nats {at(H)}. "
            f"The KL is not dropped at small β: {at(L)} it still prices every nat at "
            f"β_sum = {fmt(G.v(lo, 'beta_sum'))}, and the code stopped at {fmt(G.v(lo, 'kl'))} nats."
        )
        if G.g.loc[lo, "likelihood"] == "mse" and ok(G.v(lo, "sigma_eff")):
            a1 += (
                f" With squared error, scaling the KL is choosing the decoder noise σ² = "
                f"β_sum/2: σ = {fmt(G.v(lo, 'sigma_eff'))} {at(L)}, "
                f"{fmt(G.v(hi, 'sigma_eff'))} {at(H)}. So for every β the loss is β times the "
                "negative ELBO of the decoder with σ² = β_sum/2, up to an additive constant (the "
                "Gaussian's normaliser), not that of the σ² = ½ decoder behind the logged ELBO "
                "column; the calibrated ELBO and the IWAE bound at σ² = each run's own MSE "
                "compare runs fairly."
            )
        qs.append((q1, a1))
        qs.append((q2, _training(G, lo, hi)))
        qs.append((q3, _latent_space(G, lo, hi)))
    qs.append((q4, pick(G)))
    return qs


def _distortion(G: Groups, *groups: str) -> str:
    """What D is in D + βR: the squared error for ``loss.likelihood=mse``, otherwise the
    reconstruction term the objective holds (a negative log-likelihood, in nats)."""
    likelihoods = {str(G.g.loc[g, "likelihood"]) for g in groups} if "likelihood" in G.g else set()
    if likelihoods == {"mse"}:
        return "the squared error"
    return "the reconstruction term (the decoder's negative log-likelihood, nats per image)"


def _step(G: Groups, g: str) -> str:
    """The gradient each step follows: with ``loss.recon_reduction=mean`` the objective holds
    recon / D (recon is logged summed over the D pixels), which points where recon + β_sum·KL
    does; it is not recon + β·KL."""
    if str(G.g.loc[g, "recon_reduction"]) != "mean":
        return "∇recon + β·∇KL"
    return (
        f"∇recon/D + β·∇KL (loss.recon_reduction=mean, D = {fmt_int(G.v(g, 'n_pixels'))} "
        "pixels; recon is logged summed), the direction of ∇recon + β_sum·∇KL"
    )


def _training(G: Groups, lo: str, hi: str) -> str:
    """Q2: what β changed, and the gradient view (Alemi et al. 2018: the optimum of D + βR
    is where the R-D curve has slope -β; at a stationary point the two pulls cancel)."""
    L, H = G.bname(lo), G.bname(hi)
    text = (
        f"Lowering β from {H.removeprefix('β=')} to {L.removeprefix('β=')} raised the rate from "
        f"{fmt(G.v(hi, 'kl'))} to {fmt(G.v(lo, 'kl'))} nats and changed the squared error from "
        f"{fmt(G.v(hi, 'sse'))} to {fmt(G.v(lo, 'sse'))} per image (PSNR "
        f"{fmt(G.v(hi, 'psnr'))} → {fmt(G.v(lo, 'psnr'))} dB). In gradient terms each step "
        f"follows {_step(G, hi)}. At convergence the two expected pulls on the encoder balance "
        "for every β; β does not make one term win, it sets where they balance: at the point of "
        f"the rate–distortion curve where one more nat of rate lowers {_distortion(G, lo, hi)} "
        "by β_sum (slope dD/dR = −β_sum)."
    )
    gh, gl = G.v(hi, "grad_ratio"), G.v(lo, "grad_ratio")
    ch, cl = G.v(hi, "grad_cos"), G.v(lo, "grad_cos")
    if ok(gh) and ok(gl) and ok(ch) and ok(cl):
        both = ch <= BALANCED_COS and cl <= BALANCED_COS
        text += (
            f" Measured on the encoder outputs (each pull averaged over reparameterisation "
            f"draws), ‖β∇KL‖/‖∇recon‖ was {fmt(gh)} with cosine {fmt(ch, 2)} {at(H)} and "
            f"{fmt(gl)} with cosine {fmt(cl, 2)} {at(L)}"
            + (
                ": nearly opposite pulls at both ends, the balance that convergence means."
                if both
                else (
                    f": where the cosine is above {BALANCED_COS} the measured pulls do not "
                    "cancel; either the encoder is still moving there (more epochs would tell), "
                    "or the sampling noise left after averaging the draws dominates, which is "
                    "largest where β∇KL is small (raise eval.grad_draws to check)."
                )
            )
        )
    elif ok(gh) and ok(gl):
        text += (
            f" The logged ‖β∇KL‖/‖∇recon‖ was {fmt(gh)} {at(H)} and {fmt(gl)} {at(L)} (from "
            "an older record without the expected gradients: one draw's reconstruction "
            "gradient is dominated by sampling noise, so read these with care)."
        )
    text += (
        " Adam is nearly invariant to multiplying the whole loss by a constant, so "
        "recon + 0.1·KL trains like 10·recon + KL: only the ratio β matters, not the "
        "size of either term."
    )
    return text


def _latent_space(G: Groups, lo: str, hi: str) -> str:
    """Q3 with the runs' numbers: information per image, the prior mismatch (Hoffman & Johnson
    2016) within what its estimator can show, and the dimensions in use."""
    L, H = G.bname(lo), G.bname(hi)
    il, ih = G.v(lo, "informative_dims"), G.v(hi, "informative_dims")
    m = G.v(hi, "latent_dim")
    text = (
        f"Roughly, and more precisely: a smaller β prices information about each image lower. "
        f"{at(L).capitalize()} the code carries {fmt(G.v(lo, 'kl'))} nats per image in "
        f"{fmt_int(il)} of {fmt_int(m)} dimensions (≥ {INFORMATIVE_KL} nats), against "
        f"{fmt(G.v(hi, 'kl'))} nats in {fmt_int(ih)} {at(H)}."
    )
    if ih == 0:
        text += (
            f" {at(H).capitalize()} the latent space is smooth only because it is empty: "
            "every z decodes to about the same image, so it has no structure to speak of."
        )
    ml, mh = G.v(lo, "marginal_kl"), G.v(hi, "marginal_kl")
    sat_l = G.v(lo, "mi_saturated") > 0
    sat_h = G.v(hi, "mi_saturated") > 0
    if ok(ml) and ok(mh):
        text += (
            f" The mismatch between the aggregate posterior and the prior (marginal KL, the "
            f"rate minus I(x;z)) is {nats(mh)} {at(H)} and {nats(ml)} {at(L)}."
        )
        if sat_l or sat_h:
            which = L if sat_l else H
            cap = G.v(lo if sat_l else hi, "mi_ceiling")
            text += (
                f" {at(which).capitalize()} the I(x;z) estimate sits at its ceiling log N = "
                f"{fmt(cap)} (N validation images), so there the marginal KL is the rate minus "
                "log N by construction: an upper bound on the prior mismatch, not a measurement "
                "of it. The estimator can show that a code uses more than log N nats; it cannot "
                "show how much more, nor how much of the rest is holes in the prior."
            )
        elif ml > mh:
            text += (
                " The larger mismatch at the smaller β is where prior samples can land outside "
                "the region the decoder was trained on (holes)."
            )
        else:
            text += " Here the smaller β did not cost prior mismatch."
    text += (
        " The direct evidence is in the figures: prior samples (the same noise at every β) and "
        "latent traversals show whether the space a small β leaves is still usable for "
        "sampling and interpolation. So the phrase is fair if it means: lower β buys "
        "reconstructions with information in z, and pays with a code the prior fits less "
        "well; it is the position on one trade-off curve, not dropping the prior."
    )
    return text
