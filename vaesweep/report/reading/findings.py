"""The reading's findings about β by topic: effective beta, bounds, collapse and the linear
reference (seeds, methods and the runs left out: :mod:`~vaesweep.report.reading.comparisons`;
controllers that had not settled: :mod:`~vaesweep.report.reading.settling`). Sources: the effective beta set (README, "What beta
means"; Rybkin et al. 2021 for the calibrated beta), the linear-Gaussian reference (Lucas et
al. 2019), active units (Burda et al. 2016, "Importance Weighted Autoencoders"), the
information split of the rate (Hoffman & Johnson 2016) and the IWAE bound (Burda et al. 2016).

Each function takes the :class:`~vaesweep.report.reading.phrases.Groups` view and returns sentences;
every number is a seeds.csv or summary.csv value printed with :func:`~vaesweep.report.numbers.fmt`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.reading.phrases import (
    CALIB_BAND,
    LITTLE_RATE,
    NEAR_CALIB,
    ON_REFERENCE,
    Groups,
    at,
    calib_verdict,
    grey,
    ok,
    plural,
)
from vaesweep.report.reading.settling import unsettled


def effective(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    out = []
    for g in list(G.g.index)[:20]:
        g = str(g)
        lab = G.label(g)
        s2 = G.v(g, "sigma2_eff")
        if ok(G.v(g, "beta_sum")) and G.v(g, "beta_sum") == 0:
            out.append(
                f"{lab}: β = 0, no KL term in the objective (a plain autoencoder): the noise it "
                "assumes is zero, so there is no calibration verdict."
            )
        elif ok(s2):
            bc = G.v(g, "beta_calib")
            verdict = calib_verdict(bc)
            if unsettled(G, g):
                verdict += "; not converged, so a snapshot"
            out.append(
                f"{lab}: β_sum = {fmt(G.v(g, 'beta_sum'))}, σ²_eff = {fmt(s2)} (σ = "
                f"{fmt(G.v(g, 'sigma_eff'))}, {grey(G.v(g, 'sigma_eff'), G.v(g, 'sigma_eff_255'))}), "
                f"β_calib = {fmt(bc)} ({verdict})."
            )
        elif not ok(G.v(g, "beta_sum")):
            out.append(
                f"{lab}: no effective β; the run ended held at its KL target (β_t is logged "
                "as NaN there: the weight in effect is the slope of the rate-distortion curve "
                "at that rate, which the run does not measure), so no calibration verdict."
            )
        else:
            out.append(
                f"{lab}: β_sum = {fmt(G.v(g, 'beta_sum'))}; loss.likelihood="
                f"{G.g.loc[g, 'likelihood']!s} has no Gaussian noise reading."
            )
    if len(G.g) > 20:
        out.append(f"({len(G.g) - 20} more groups in the table.)")
    if out:
        out.append(
            f"Bands: β_calib within a factor {fmt(NEAR_CALIB, 2)} of 1 is near calibrated, "
            f"up to {fmt(CALIB_BAND, 2)} somewhat over- (or under-) regularised, beyond that "
            "over-regularised (or autoencoder-like)."
        )
    t = G.table
    mean = t[t["recon_reduction"] == "mean"]
    d = t["n_pixels"].dropna()
    if not mean.empty:
        r = mean.iloc[0]
        out.append(
            f"{len(mean)} run(s) averaged the reconstruction over pixels "
            f"(loss.recon_reduction=mean), which multiplies β by D = {fmt_int(r['n_pixels'])}: "
            f"{r['run']} had β = {fmt(r['beta'])} but β_sum = {fmt(r['beta_sum'])}, "
            f"σ_eff = {fmt(r['sigma_eff'])}."
        )
    elif not d.empty and t["recon_reduction"].notna().any():
        n = int(t["recon_reduction"].notna().sum())
        out.append(
            f"{f'All {n} runs' if n > 1 else 'The run'} summed the reconstruction over "
            f"the D = {fmt_int(d.iloc[0])} pixels (loss.recon_reduction=sum), so no β was "
            f"inflated; with a pixel mean (F.mse_loss's default) each β would have acted "
            f"{fmt_int(d.iloc[0])} times larger."
        )
    return out


def bounds(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    """Bounds compared only like with like: ELBO/NLL within one likelihood on one data
    setting; bits/dim across likelihoods only on the same data (binarisation)."""
    out = []
    kinds = _kinds(G)
    for (lik, binar), rows in kinds:
        g = G.best("elbo", high=True, rows=rows)
        if not g:
            continue
        e = pd.to_numeric(rows["elbo_mean"], errors="coerce")
        where = (
            f" among loss.likelihood={lik} runs on {_data_words(binar)}" if len(kinds) > 1 else ""
        )
        out.append(
            f"The best ELBO (β = 1 bound of the trained decoder){where} is "
            f"{fmt(G.v(g, 'elbo'))} nats per image, {at(G.label(g))}; across those settings it "
            f"ranges from {fmt(e.min())} to {fmt(e.max())}."
        )
    c = G.best_calibrated_elbo()
    if c:
        out.append(
            f"For mse runs that ELBO uses σ² = ½, the noise level β = 1 assumes, so it favours "
            f"β near 1 by construction; with σ² set to each run's own MSE (calibrated ELBO) the "
            f"best is {at(G.label(c))}, {fmt(G.v(c, 'elbo_calib'))} nats per image."
        )
    for (lik, binar), rows in kinds:
        i = G.best("iwae_nll", high=False, rows=rows)
        if not i:
            continue
        s = (
            f"The IWAE estimate (k = {fmt_int(G.v(i, 'iwae_samples'))}) of loss.likelihood={lik}"
            f" on {_data_words(binar)} is best {at(G.label(i))}: NLL "
            f"{fmt(G.v(i, 'iwae_nll'))} nats per image, {fmt(G.v(i, 'bpd'))} bits per dimension"
        )
        if lik == "mse":
            s += (
                " (at σ² = ½, a density no run was fitted to: it can be worse than the 8 bits/dim "
                "of a uniform density, so it ranks nothing"
            )
            cb = G.best("iwae_calib_bpd", high=False, rows=rows)
            if cb:
                s += (
                    f"; with σ² = each run's own MSE the best is {at(G.label(cb))}, "
                    f"{fmt(G.v(cb, 'iwae_calib_bpd'))} bits/dim"
                )
            s += ")"
        e1 = G.v(i, "iwae_elbo_nll")
        if ok(e1):
            s += (
                f"; the ELBO on the same images and draws is {fmt(-e1)} nats, never above the "
                "IWAE bound"
            )
        out.append(s + ".")
    out += _mixing(G, kinds)
    return out


def _kinds(G: Groups) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Groups split by (likelihood, binarisation): the sets whose bounds are comparable."""
    lik = G.g["likelihood"].fillna("?").astype(str)
    binar = (
        G.g["binarize"].fillna("none").astype(str)
        if "binarize" in G.g
        else pd.Series("none", index=G.g.index)
    )
    key = lik + "|" + binar
    return [
        ((k.split("|")[0], k.split("|")[1]), G.g[key == k]) for k in dict.fromkeys(key.tolist())
    ]


def _data_words(binarize: str) -> str:
    return {
        "none": "grey-level data",
        "static": "statically binarised data",
        "dynamic": "dynamically binarised data",
    }.get(binarize, f"data.binarize={binarize}")


def _mixing(G: Groups, kinds: list[tuple[tuple[str, str], pd.DataFrame]]) -> list[str]:
    liks = sorted({k[0] for k, _ in kinds})
    bins = sorted({k[1] for k, _ in kinds})
    out = []
    if len(liks) > 1:
        out.append(
            f"This sweep mixes likelihoods ({', '.join(liks)}): densities on [0, 1]^D and "
            "probabilities of discrete pixels are not on one scale, so their ELBOs and NLLs are "
            "compared only within one likelihood; across likelihoods compare the dequantised "
            "bits/dim on the same data."
        )
    if len(bins) > 1:
        out.append(
            f"It also mixes binarisations ({', '.join(bins)}): grey and binarised images are "
            "different datasets, so no bound or bits/dim is compared across them."
        )
    return out


def collapse(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    rows = G.g
    dims = pd.to_numeric(rows["latent_dim_mean"], errors="coerce")
    mixed = dims.dropna().nunique() > 1  # model.latent_dim swept: each count has its own M
    listing = ", ".join(
        f"{fmt_int(rows.loc[g, 'informative_dims_mean'])}"
        f"{f' of {fmt_int(dims[g])}' if mixed else ''} {at(G.label(str(g)))}"
        for g in rows.index
    )
    of_m = "" if mixed else f", out of M = {fmt_int(dims.max())}"
    out = [f"Dimensions carrying at least {INFORMATIVE_KL} nats{of_m}: {listing}."]
    au = ", ".join(
        f"{fmt_int(rows.loc[g, 'active_units_mean'])} {at(G.label(str(g)))}" for g in rows.index
    )
    out.append(f"Active units (Burda et al. 2016: Var_x E[z_j] > 0.01): {au}.")
    lin = rows["lin_active_units_mean"].dropna() if "lin_active_units_mean" in rows else None
    if lin is not None and len(lin):
        above = rows.get("lin_components_above_mean")
        parts = []
        for g, v in lin.items():
            a = float(above.get(g, float("nan"))) if above is not None else float("nan")
            extra = f" (#{{λ_i > σ²}} = {fmt_int(a)})" if ok(a) and a > v else ""
            parts.append(f"{fmt_int(v)}{extra} {at(G.label(str(g)))}")
        with_m = "" if mixed else f" with M = {fmt_int(dims.max())}"
        out.append(
            f"Linear-theory prediction min(M, #{{λ_i > σ²_eff}}){with_m}: " + ", ".join(parts) + "."
        )
    if ends:
        const = G.by_beta()
        inf = const["informative_dims_mean"].to_numpy(dtype=float)
        labels = [G.label(str(g)) for g in const.index]
        dead = np.flatnonzero(inf == 0)
        if dead.size and dead[0] > 0:
            j = int(dead[0])
            out.append(
                f"Full collapse (no dimension with {INFORMATIVE_KL} nats) sets in between "
                f"{labels[j - 1]} ({plural(inf[j - 1], 'dimension')}) and {labels[j]} (total KL "
                f"{fmt(const['kl_mean'].iloc[j])} nats)."
            )
        elif dead.size:
            out.append(
                f"Already the smallest β, {labels[0]}, has no dimension with {INFORMATIVE_KL} nats "
                f"(total KL {fmt(const['kl_mean'].iloc[0])} nats): every β in this sweep collapsed."
            )
        else:
            k = int(np.argmin(inf))
            out.append(
                f"No β collapsed fully; the fewest informative dimensions were {fmt_int(inf[k])} "
                f"{at(labels[k])}."
            )
    for g in rows.index:
        g = str(g)
        a, i = G.v(g, "active_units"), G.v(g, "informative_dims")
        if ok(a) and ok(i) and a - i >= max(2.0, 0.25 * dims.get(g, dims.max())):
            s = (
                f"{at(G.label(g)).capitalize()}, {fmt_int(a)} units pass the active-unit test but "
                f"only {fmt_int(i)} carry at least {INFORMATIVE_KL} nats: the active-unit count "
                f"overstates how many dimensions the code uses"
            )
            kl = G.v(g, "kl")
            if kl < LITTLE_RATE:
                s += (
                    f"; in total it transmits only {fmt(kl)} nats (the largest single dimension "
                    f"{fmt(G.v(g, 'max_dim_kl'))} nats)"
                )
            out.append(s + ".")
    return out


def linear(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    rows = G.g[G.g["sse_above_linear_mean"].notna()] if "sse_above_linear_mean" in G.g else G.g[:0]
    if rows.empty:
        return [
            "The run records carry no PCA spectrum of the training data (summary.json "
            "data.pca), so the linear reference could not be computed."
        ]
    out = []
    above = 0
    for g in list(rows.index)[:20]:
        g = str(g)
        gap, ref = G.v(g, "sse_above_linear"), G.v(g, "lin_sse_at_rate")
        where = (
            "on it"
            if abs(gap) <= ON_REFERENCE * ref
            else ("above it: worse than PCA" if gap > 0 else "below it: better than PCA")
        )
        above += gap > ON_REFERENCE * ref
        out.append(
            f"{G.label(g)}: SSE {fmt(G.v(g, 'sse'))} at a rate of {fmt(G.v(g, 'kl'))} nats; a "
            f"linear VAE reaches {fmt(ref)} at that rate, a difference of {fmt(gap)} ({where})."
        )
    out.append(
        f"{above} of {len(rows)} setting(s) lie more than {fmt_pct(ON_REFERENCE)} above the "
        f"linear reference."
    )
    return out
