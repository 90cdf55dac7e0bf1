"""The reading's answer up top: what β did between the smallest and the largest β, and why.

With two constant-β ends (:func:`~vaesweep.report.reading.build.build_reading` picks them) the
answer compares their reconstructions and rates, then reads β as the decoder noise it implies (Lucas
et al. 2019; Rybkin et al. 2021) and finds where the calibrated β_calib crosses 1. With one setting,
or one β and several KL-control methods, it describes each setting against its references instead.
"""

from __future__ import annotations

import math

import pandas as pd

from vaesweep.report.data.per_run import GAUSSIAN, INFORMATIVE_KL
from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.reading.phrases import (
    MEAN_IMAGE_SHARE,
    ON_REFERENCE,
    Groups,
    at,
    calib_words,
    grey,
    ok,
)


def build_answer(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    """The opening paragraphs: the two ends compared and explained, or each setting described."""
    if ends is None:
        return _answer_single(G)
    lo, hi = ends
    L, H = G.bname(lo), G.bname(hi)
    out = []
    if G.context and len(G.g["others"].fillna("").unique()) > 1:
        out.append(
            f"Comparing β among the runs with {G.context} (the largest set of constant-β runs "
            f"that differ only in β; the other settings are in the tables and figures)."
        )
    tv = G.v(hi, "total_variance")
    sse_h, sse_l = G.v(hi, "sse"), G.v(lo, "sse")
    if ok(tv) and ok(sse_h) and ok(sse_l):
        share_h, share_l = sse_h / tv, sse_l / tv
        look = (
            "no better than the mean image"
            if share_h >= 1
            else "close to the mean image"
            if share_h >= MEAN_IMAGE_SHARE
            else ("heavily blurred" if share_h >= 0.5 else "recognisable but less sharp")
        )
        out.append(
            f"{at(H).capitalize()} the reconstructions are {look}: their squared error is "
            f"{fmt(sse_h)} per image (PSNR {fmt(G.v(hi, 'psnr'))} dB), {fmt_pct(share_h)} of the "
            f"data's total variance of {fmt(tv)}, which is the error of always outputting the mean "
            f"image; {at(L)} it is {fmt(sse_l)} ({fmt_pct(share_l)}, PSNR "
            f"{fmt(G.v(lo, 'psnr'))} dB). These errors decode z drawn from the posterior, averaged over draws, "
            f"as the objective does; the reconstruction grid decodes z = μ, so it looks a "
            f"little sharper than these numbers."
        )
    elif ok(sse_h) and ok(sse_l):
        out.append(
            f"{at(H).capitalize()} the squared error of the reconstructions is {fmt(sse_h)} per "
            f"image (PSNR {fmt(G.v(hi, 'psnr'))} dB), against {fmt(sse_l)} (PSNR "
            f"{fmt(G.v(lo, 'psnr'))} dB) {at(L)}."
        )
    m = G.v(hi, "latent_dim")
    inf_h, inf_l = G.v(hi, "informative_dims"), G.v(lo, "informative_dims")
    sentence = (
        f"The code carries {fmt(G.v(hi, 'kl'))} nats per image {at(H)}, with "
        f"{fmt_int(inf_h)} of its {fmt_int(m)} latent dimensions above {INFORMATIVE_KL} nats, "
        f"against {fmt(G.v(lo, 'kl'))} nats and {fmt_int(inf_l)} dimensions {at(L)}"
    )
    if inf_h == 0:
        sentence += f": {at(H)} the posterior has collapsed to the prior"
    out.append(sentence + ".")
    out += _why(G, hi, lo)
    return out


def _why(G: Groups, hi: str, lo: str) -> list[str]:
    """The decoder-noise reading of beta for the two ends: squared error + beta * KL is the ELBO of
    a Gaussian decoder with sigma^2 = beta / 2 (Lucas et al. 2019; Rybkin et al. 2021), and a
    linear VAE encodes only the principal directions above that noise (Lucas et al. 2019)."""
    lik = str(G.g.loc[hi, "likelihood"])
    H, L = G.bname(hi), G.bname(lo)
    s2h, s2l = G.v(hi, "sigma2_eff"), G.v(lo, "sigma2_eff")
    if lik not in GAUSSIAN or not (ok(s2h) and ok(s2l)):
        return [
            f"With loss.likelihood={lik} β has no Gaussian noise reading; it weighs each nat of "
            f"rate at β_sum = {fmt(G.v(hi, 'beta_sum'))} {at(H)} against "
            f"{fmt(G.v(lo, 'beta_sum'))} {at(L)}."
        ]
    out = []
    if lik == "mse":
        # SSE/(2σ²) is the Gaussian's negative log-likelihood up to its normaliser, so the
        # objective is beta times the negative ELBO at σ² = β_sum/2, plus a constant.
        objective = "SSE/D + β·KL" if G.g.loc[hi, "recon_reduction"] == "mean" else "SSE + β·KL"
        lead = (
            f"With loss.likelihood=mse the objective {objective} is β times the negative ELBO "
            "of a Gaussian decoder with noise variance σ² = β_sum/2, up to an additive constant"
        )
    else:
        lead = f"With loss.likelihood={lik} the objective is the ELBO of a Gaussian decoder"
    out.append(
        f"{lead}, so {H} assumes pixel noise σ = {fmt(G.v(hi, 'sigma_eff'))} on the [0, 1] "
        f"scale ({grey(G.v(hi, 'sigma_eff'), G.v(hi, 'sigma_eff_255'))}), and {L} assumes "
        f"σ = {fmt(G.v(lo, 'sigma_eff'))} ({grey(G.v(lo, 'sigma_eff'), G.v(lo, 'sigma_eff_255'))})."
    )
    if G.g.loc[hi, "recon_reduction"] == "mean":
        out.append(
            f"The reconstruction was averaged over the D = {fmt_int(G.v(hi, 'n_pixels'))} "
            f"pixels (loss.recon_reduction=mean), which multiplied β by D: β_sum = "
            f"{fmt(G.v(hi, 'beta_sum'))} {at(H)}."
        )
    au_h, au_l = G.v(hi, "lin_active_units"), G.v(lo, "lin_active_units")
    if ok(au_h) and ok(au_l):
        out.append(
            f"Encoding a direction of the data only pays where its variance exceeds σ²: "
            f"{fmt_int(au_h)} of the top {fmt_int(G.v(hi, 'latent_dim'))} principal components "
            f"have variance above σ² = {fmt(s2h)} (the largest is {fmt(G.v(hi, 'lambda_1'))}), so "
            f"even a linear VAE would keep {fmt_int(au_h)} dimensions and "
            f"{fmt(G.v(hi, 'lin_rate'))} nats {at(H)}; at σ² = {fmt(s2l)}, "
            f"{_components(G, lo)}."
        )
        limited = _limited_by_m(G)
        if limited:
            out.append(limited)
    bc = G.v(hi, "beta_calib")
    if ok(bc):
        out.append(
            f"Measured against the noise level the model actually reached (σ² = its per-pixel "
            f"MSE, {fmt(G.v(hi, 'mse'))}), the calibrated β_calib = σ²_eff / MSE is {fmt(bc)} "
            f"{at(H)}: {calib_words(bc)}."
        )
    star = calibrated_beta(G)
    if star:
        out.append(star)
    gap, ref = G.v(hi, "sse_above_linear"), G.v(hi, "lin_sse_at_rate")
    if ok(gap) and ok(ref) and ref > 0:
        if gap <= ON_REFERENCE * ref:
            out.append(
                f"The run {at(H)} sits {'on' if abs(gap) <= ON_REFERENCE * ref else 'below'} "
                f"the linear reference at its rate (SSE {fmt(G.v(hi, 'sse'))} against "
                f"{fmt(ref)} for a linear VAE), so the network is not the problem: the blur is "
                f"what this β asks for, and a smaller β (or loss.likelihood=gaussian_optimal, "
                f"which fits σ² to the error) is the fix."
            )
        else:
            out.append(
                f"The run {at(H)} is also {fmt(gap)} SSE above the linear reference at its "
                f"rate ({fmt(ref)}), so besides the weight the network underfits (more epochs or "
                f"capacity would help)."
            )
    return out


def _components(G: Groups, g: str) -> str:
    """#{lambda_i > sigma^2} and the count capped at M: both, since they differ in meaning."""
    capped, above = G.v(g, "lin_active_units"), G.v(g, "lin_components_above")
    m = G.v(g, "latent_dim")
    if ok(above) and above > capped:
        return (
            f"{fmt_int(above)} components clear that bar, of which a linear VAE with "
            f"M = {fmt_int(m)} can keep {fmt_int(capped)}"
        )
    return f"{fmt_int(capped)} components clear that bar"


def _limited_by_m(G: Groups) -> str | None:
    """The betas at which more principal components clear sigma^2 than there are latent dims:
    there the code is limited by M, not by beta."""
    rows = G.by_beta()
    if "lin_components_above_mean" not in rows:
        return None
    above = pd.to_numeric(rows["lin_components_above_mean"], errors="coerce")
    m = pd.to_numeric(rows["latent_dim_mean"], errors="coerce")
    hit = rows[above > m]
    if hit.empty:
        return None
    labels = [G.bname(str(i)) for i in hit.index]
    return (
        f"At {', '.join(labels)} more principal components clear σ² than there are latent "
        f"dimensions (M = {fmt_int(m.max())}): there the code is limited by M, not by β, and a "
        f"smaller β alone cannot add dimensions (a larger model.latent_dim can)."
    )


def calibrated_beta(G: Groups) -> str | None:
    """Where beta_calib crosses 1, interpolated log-linearly between adjacent constant groups
    of one likelihood (beta_calib of different likelihoods is not one curve)."""
    rows = G.constant.sort_values("beta_mean")
    rows = rows[(rows["beta_mean"] > 0) & (rows["beta_calib_mean"] > 0)]
    if rows.empty:
        return None
    lik = rows["likelihood"].fillna("?")
    rows = rows[lik == lik.value_counts().index[0]]
    if len(rows) < 2:
        return None
    b = rows["beta_mean"].to_numpy(dtype=float)
    c = rows["beta_calib_mean"].to_numpy(dtype=float)
    labels = [G.bname(str(i)) for i in rows.index]
    for i in range(len(b) - 1):
        if (c[i] - 1) * (c[i + 1] - 1) <= 0 and c[i] != c[i + 1]:
            t = -math.log(c[i]) / (math.log(c[i + 1]) - math.log(c[i]))
            star = math.exp(math.log(b[i]) + t * (math.log(b[i + 1]) - math.log(b[i])))
            return (
                f"β_calib passes 1 between {labels[i]} ({fmt(c[i])}) and {labels[i + 1]} "
                f"({fmt(c[i + 1])}): near β ≈ {fmt(star, 2)} (log-linear interpolation) the KL "
                f"weight matches the model's own reconstruction error."
            )
    if (c > 1).all():
        return (
            f"Every β here has β_calib above 1 (smallest {fmt(c.min())} {at(labels[int(c.argmin())])}): "
            f"all runs are more regularised than their own error level; a calibrated β is "
            f"below {labels[0].removeprefix('β=')}."
        )
    return (
        f"Every β here has β_calib below 1 (largest {fmt(c.max())} {at(labels[int(c.argmax())])}): "
        f"all runs weight the prior less than their own error level; a calibrated β is above "
        f"{labels[-1].removeprefix('β=')}."
    )


def _answer_single(G: Groups) -> list[str]:
    """One setting (or one beta with several methods): describe it against its references."""
    out = []
    methods = G.g["method"].dropna().unique()
    if len(methods) > 1:
        bt = pd.to_numeric(G.g["beta_t_mean"], errors="coerce")
        lo, hi = str(bt.idxmin()), str(bt.idxmax())
        out.append(
            f"These runs differ in how the KL is controlled ({', '.join(map(str, methods))}), "
            f"and their final KL weights β_t range from {fmt(bt.min())} ({G.label(lo)}) to "
            f"{fmt(bt.max())} ({G.label(hi)}); each point on the rate–distortion plane sits "
            f"where its final β_t put it."
        )
    for g in G.g.index[:12]:
        g = str(g)
        lab = G.label(g)
        s = (
            f"{at(lab).capitalize()}: rate {fmt(G.v(g, 'kl'))} nats per image, squared error "
            f"{fmt(G.v(g, 'sse'))} per image (PSNR {fmt(G.v(g, 'psnr'))} dB), "
            f"{fmt_int(G.v(g, 'informative_dims'))} of {fmt_int(G.v(g, 'latent_dim'))} latent "
            f"dimensions above {INFORMATIVE_KL} nats"
        )
        tv = G.v(g, "total_variance")
        if ok(tv):
            s += f", error {fmt_pct(G.v(g, 'sse') / tv)} of the mean image's ({fmt(tv)})"
        s2 = G.v(g, "sigma2_eff")
        if ok(s2):
            s += (
                f"; the objective assumes decoder noise σ = {fmt(G.v(g, 'sigma_eff'))} "
                f"({grey(G.v(g, 'sigma_eff'), G.v(g, 'sigma_eff_255'))}), β_calib "
                f"{fmt(G.v(g, 'beta_calib'))}"
            )
        out.append(s + ".")
    if len(G.g) > 12:
        out.append(f"({len(G.g) - 12} more settings are in the tables below.)")
    return out
