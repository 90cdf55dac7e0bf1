"""The written reading: plain sentences, each built from numbers in the report's tables.

Every number quoted comes from ``seeds.csv`` (group means over seeds, :func:`aggregate.seed_stats`)
or ``summary.csv`` (one row per run), printed with :func:`~vaesweep.report.numbers.fmt`, so a
reader can find it in the tables. Wording that judges a number ("over-regularised", "collapsed")
is chosen by a threshold on that number, never fixed in advance, so the text cannot contradict
the data. The logic follows the science notes: beta as decoder noise (1.4), effective and
calibrated beta (2.2), the linear-Gaussian reference (2.4), active units and collapse (3.7),
information vs prior mismatch (3.8) and the three answers of section 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vaesweep.report import findings
from vaesweep.report.aggregate import Sweep
from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.per_run import GAUSSIAN, INFORMATIVE_KL
from vaesweep.report.phrases import (
    MEAN_IMAGE_SHARE,
    ON_REFERENCE,
    Groups,
    at,
    calib_words,
    grey,
    nats,
    ok,
)


@dataclass
class Reading:
    """The text of a report: the answer up top, short answers, then findings by topic."""

    headline: str
    title: str = "What β did in these runs"
    answer: list[str] = field(default_factory=list)
    questions: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def text(self) -> str:
        """All sentences as plain text (for tests and the Markdown report)."""
        parts = [self.headline, *self.answer]
        parts += [f"{q} {a}" for q, a in self.questions]
        for title, sentences in self.sections:
            parts += [title, *sentences]
        return "\n".join(parts)


def build_reading(sweep: Sweep) -> Reading:
    G = Groups(sweep)
    n_runs = len(sweep.table)
    n_ok = int(sweep.table["usable"].sum())
    reading = Reading(headline=_headline(sweep, G, n_runs, n_ok))
    if G.g.empty:
        reading.answer.append(
            f"None of the {n_runs} runs finished with final values, so there is nothing to "
            "compare yet; the runs left out and their reasons are listed below."
        )
        reading.sections.append(("Runs left out", findings.failures(sweep)))
        return reading
    ends = _ends(G)
    reading.answer = _answer(G, ends)
    if ends and G.v(ends[1], "sse") > G.v(ends[0], "sse"):
        reading.title = (
            f"Why the reconstructions at {G.bname(ends[1])} are worse than at {G.bname(ends[0])}"
        )
    reading.questions = _questions(G, ends)
    for title, fn in (
        ("Effective β and implied decoder noise", findings.effective),
        ("ELBO and likelihood", findings.bounds),
        ("Posterior collapse", findings.collapse),
        ("Distance from the linear (PCA) reference", findings.linear),
        ("Seeds", findings.seeds),
        ("KL-control methods", findings.methods),
    ):
        sentences = fn(G, ends)
        if sentences:
            reading.sections.append((title, sentences))
    left_out = findings.failures(sweep)
    if left_out:
        reading.sections.append(("Runs left out", left_out))
    if sweep.problems:
        reading.sections.append(
            ("Problems reading the records", [p.rstrip(".") + "." for p in sweep.problems])
        )
    return reading


def _headline(sweep: Sweep, G: Groups, n_runs: int, n_ok: int) -> str:
    kinds = ", ".join(f"{v} {k}" for k, v in sweep.table["status"].value_counts().items())
    what = (
        f"{len(G.g)} setting(s)"
        if len(G.g) != 1
        else (f"one setting ({G.label(G.g.index[0])})" if len(G.g) else "no setting")
    )
    return f"{n_runs} run(s) ({kinds}); {n_ok} with final values, covering {what}."


def _ends(G: Groups) -> tuple[str, str] | None:
    """(smallest-beta group, largest-beta group) among constant-beta groups, if two differ.

    When another swept key varies too (latent_dim, data, ...), the two ends come from the
    largest set of groups that agree on everything but beta, so the comparison is like for
    like; :attr:`Groups.constant` is narrowed to that set.
    """
    rows = G.constant[G.constant["beta_mean"] > 0]
    if rows.empty:
        return None
    others = rows["others"].fillna("") if "others" in rows else pd.Series("", index=rows.index)
    counts = rows.groupby(others)["beta_mean"].nunique().sort_values(ascending=False)
    if counts.empty or counts.iloc[0] < 2:
        return None
    rows = rows[others == counts.index[0]].sort_values("beta_mean")
    G.constant = rows
    G.context = str(counts.index[0])
    return str(rows.index[0]), str(rows.index[-1])


# ----------------------------------------------------------------------------- the answer


def _answer(G: Groups, ends: tuple[str, str] | None) -> list[str]:
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
            "close to the mean image"
            if share_h >= MEAN_IMAGE_SHARE
            else ("heavily blurred" if share_h >= 0.5 else "recognisable but less sharp")
        )
        out.append(
            f"{at(H).capitalize()} the reconstructions are {look}: their squared error is "
            f"{fmt(sse_h)} per image (PSNR {fmt(G.v(hi, 'psnr'))} dB), {fmt_pct(share_h)} of the "
            f"data's total variance of {fmt(tv)}, which is the error of always outputting the mean "
            f"image; {at(L)} it is {fmt(sse_l)} ({fmt_pct(share_l)}, PSNR "
            f"{fmt(G.v(lo, 'psnr'))} dB)."
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
    """The decoder-noise reading of beta (science notes 1.4, 2.2, 2.4) for the two ends."""
    lik = G.g.loc[hi, "likelihood"]
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
        lead = (
            "With loss.likelihood=mse the objective SSE + β·KL is exactly the ELBO of a Gaussian "
            "decoder with noise variance σ² = β_sum/2"
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
            f"{fmt(G.v(hi, 'lin_rate'))} nats {at(H)}; at σ² = {fmt(s2l)}, {fmt_int(au_l)} "
            f"components clear that bar."
        )
    bc = G.v(hi, "beta_calib")
    if ok(bc):
        out.append(
            f"Measured against the noise level the model actually reached (σ² = its per-pixel "
            f"MSE, {fmt(G.v(hi, 'mse'))}), the calibrated β_calib = σ²_eff / MSE is {fmt(bc)} "
            f"{at(H)}: {calib_words(bc)}."
        )
    star = _calibrated_beta(G)
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


def _calibrated_beta(G: Groups) -> str | None:
    """Where beta_calib crosses 1, interpolated log-linearly between adjacent constant groups."""
    rows = G.constant.sort_values("beta_mean")
    rows = rows[(rows["beta_mean"] > 0) & (rows["beta_calib_mean"] > 0)]
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


# ----------------------------------------------------------------------------- questions


def _questions(G: Groups, ends: tuple[str, str] | None) -> list[tuple[str, str]]:
    qs = []
    q1 = "Is scaling the KL term sound, or does it drop the KL?"
    q2 = "What does β do?"
    q3 = "What should I pick?"
    if ends:
        lo, hi = ends
        L, H = G.bname(lo), G.bname(hi)
        rows = G.constant[G.constant["beta_mean"] > 0].sort_values("beta_mean")
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
                f" With squared error, scaling the KL is choosing the decoder noise σ² = β/2: "
                f"σ = {fmt(G.v(lo, 'sigma_eff'))} {at(L)}, {fmt(G.v(hi, 'sigma_eff'))} {at(H)}."
            )
        qs.append((q1, a1))
        a2 = (
            f"Lowering β from {H.removeprefix('β=')} to {L.removeprefix('β=')} raised the rate from "
            f"{fmt(G.v(hi, 'kl'))} to {fmt(G.v(lo, 'kl'))} nats and changed the squared error from "
            f"{fmt(G.v(hi, 'sse'))} to {fmt(G.v(lo, 'sse'))} per image (PSNR "
            f"{fmt(G.v(hi, 'psnr'))} → {fmt(G.v(lo, 'psnr'))} dB)."
        )
        gh, gl = G.v(hi, "grad_ratio"), G.v(lo, "grad_ratio")
        if ok(gh) and ok(gl):
            a2 += (
                f" In gradient terms, at the end of training the weighted KL pulled on the encoder "
                f"outputs {fmt(gh)} times as hard as the reconstruction {at(H)}, and {fmt(gl)} "
                f"times {at(L)}."
            )
        mh, ml = G.v(hi, "marginal_kl"), G.v(lo, "marginal_kl")
        if ok(mh) and ok(ml):
            a2 += (
                f" The mismatch between the aggregate posterior and the prior (marginal KL) was "
                f"{fmt(mh)} nats {at(H)} and {fmt(ml)} nats {at(L)}"
                + (
                    ": the price of a small β is worse prior samples."
                    if ml > mh
                    else ": here a smaller β did not cost prior mismatch."
                )
            )
        qs.append((q2, a2))
    qs.append((q3, _pick(G)))
    return qs


def _pick(G: Groups) -> str:
    parts = []
    g = G.best("mse", high=False)
    if g:
        parts.append(
            f"for reconstructions, {G.label(g)} (MSE {fmt(G.v(g, 'mse'))}, PSNR "
            f"{fmt(G.v(g, 'psnr'))} dB)"
        )
    mse_runs = G.g[G.g["likelihood"] == "mse"]
    g = G.best("elbo_calib", high=True, rows=mse_runs) if not mse_runs.empty else None
    if g:
        parts.append(
            f"for the likelihood with the decoder noise fitted to each run's error (calibrated "
            f"ELBO), {G.label(g)} ({fmt(G.v(g, 'elbo_calib'))} nats per image)"
        )
    g = G.best("iwae_nll", high=False)
    if g:
        text = (
            f"for the IWAE bound of the trained decoder, {G.label(g)} (NLL "
            f"{fmt(G.v(g, 'iwae_nll'))} nats, {fmt(G.v(g, 'bpd'))} bits/dim"
        )
        if G.g.loc[g, "likelihood"] == "mse":
            text += "; for mse the decoder density has σ² = ½, so this too favours β near 1"
        parts.append(text + ")")
    g = G.best("marginal_kl", high=False)
    if g:
        text = f"for prior samples that land where images were encoded (smallest marginal KL), {G.label(g)} ({nats(G.v(g, 'marginal_kl'))}"
        if G.v(g, "informative_dims") == 0:
            text += (
                ", but with no dimension above 0.1 nats its samples hardly differ from each other"
            )
        parts.append(text + ")")
    if not parts:
        return "The runs have no comparable final metrics."
    text = "It depends on what the model is for: " + "; ".join(parts) + "."
    star = _calibrated_beta(G)
    if star and "passes 1" in star:
        text += (
            " One principled choice is the β where β_calib ≈ 1 (see above), or "
            "loss.likelihood=gaussian_optimal, which sets σ² to the running MSE and so picks it "
            "during training (Rybkin et al. 2021)."
        )
    return text


# ----------------------------------------------------------------------------- sections
