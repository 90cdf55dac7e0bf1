"""The reading's findings by topic: effective beta, bounds, collapse, linear reference, seeds,
KL-control methods and the runs left out. Sources: the effective beta set (README, "What beta
means"; Rybkin et al. 2021 for the calibrated beta), the linear-Gaussian reference (Lucas et
al. 2019), active units (Burda et al. 2016, "Importance Weighted Autoencoders"), the
information split of the rate (Hoffman & Johnson 2016) and the IWAE bound (Burda et al. 2016).

Each function takes the :class:`~vaesweep.report.reading.phrases.Groups` view and returns sentences;
every number is a seeds.csv or summary.csv value printed with :func:`~vaesweep.report.numbers.fmt`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.reading.phrases import (
    CALIB_BAND,
    LITTLE_RATE,
    ON_REFERENCE,
    Groups,
    at,
    grey,
    nats,
    ok,
    plural,
)


def effective(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    out = []
    for g in list(G.g.index)[:20]:
        g = str(g)
        lab = G.label(g)
        s2 = G.v(g, "sigma2_eff")
        if ok(s2):
            bc = G.v(g, "beta_calib")
            verdict = (
                "over-regularised"
                if bc > CALIB_BAND
                else ("autoencoder-like" if bc < 1 / CALIB_BAND else "near calibrated")
            )
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
                f"{G.g.loc[g, 'likelihood']} has no Gaussian noise reading."
            )
    if len(G.g) > 20:
        out.append(f"({len(G.g) - 20} more groups in the table.)")
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
        out.append(
            f"All {int(t['recon_reduction'].notna().sum())} runs summed the reconstruction over "
            f"the D = {fmt_int(d.iloc[0])} pixels (loss.recon_reduction=sum), so no β was "
            f"inflated; with a pixel mean (F.mse_loss's default) each β would have acted "
            f"{fmt_int(d.iloc[0])} times larger."
        )
    return out


def bounds(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    out = []
    g = G.best("elbo", high=True)
    if g:
        e = pd.to_numeric(G.g["elbo_mean"], errors="coerce")
        out.append(
            f"The best ELBO (β = 1 bound of the trained decoder) is {fmt(G.v(g, 'elbo'))} nats "
            f"per image, {at(G.label(g))}; across settings it ranges from {fmt(e.min())} to "
            f"{fmt(e.max())}."
        )
    c = G.best_calibrated_elbo()
    if c:
        out.append(
            f"For mse runs that ELBO uses σ² = ½, the noise level β = 1 assumes, so it favours "
            f"β near 1 by construction; with σ² set to each run's own MSE (calibrated ELBO) the "
            f"best is {at(G.label(c))}, {fmt(G.v(c, 'elbo_calib'))} nats per image."
        )
    i = G.best("iwae_nll", high=False)
    if i:
        out.append(
            f"The IWAE estimate (k = {fmt_int(G.v(i, 'iwae_samples'))}) is best {at(G.label(i))}: "
            f"NLL {fmt(G.v(i, 'iwae_nll'))} nats per image, {fmt(G.v(i, 'bpd'))} bits per "
            f"dimension."
        )
    return out


def collapse(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    rows = G.g
    m = pd.to_numeric(rows["latent_dim_mean"], errors="coerce").max()
    listing = ", ".join(
        f"{fmt_int(rows.loc[g, 'informative_dims_mean'])} {at(G.label(str(g)))}" for g in rows.index
    )
    out = [
        f"Dimensions carrying at least {INFORMATIVE_KL} nats, out of M = {fmt_int(m)}: {listing}."
    ]
    au = ", ".join(
        f"{fmt_int(rows.loc[g, 'active_units_mean'])} {at(G.label(str(g)))}" for g in rows.index
    )
    out.append(f"Active units (Burda et al. 2016: Var_x E[z_j] > 0.01): {au}.")
    lin = rows["lin_active_units_mean"].dropna() if "lin_active_units_mean" in rows else []
    if len(lin):
        out.append(
            "Linear-theory prediction #{λ_i > σ²_eff}: "
            + ", ".join(f"{fmt_int(v)} {at(G.label(str(g)))}" for g, v in lin.items())
            + "."
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
        if ok(a) and ok(i) and a - i >= max(2.0, 0.25 * m):
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


def seeds(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    n = G.g["n_seeds"]
    if n.max() < 2:
        return []
    std = pd.to_numeric(G.g["elbo_std"], errors="coerce")
    mean = pd.to_numeric(G.g["elbo_mean"], errors="coerce")
    g, lo, hi = str(std.idxmax()), str(mean.idxmin()), str(mean.idxmax())
    count = (
        f"Every setting has {plural(n.min(), 'seed')}."
        if n.min() == n.max()
        else f"Settings have {fmt_int(n.min())} to {fmt_int(n.max())} seeds."
    )
    out = [
        f"{count} The largest standard deviation of the ELBO over seeds is {fmt(std.max())} "
        f"nats ({at(G.label(g))}), against ELBO means from {fmt(mean.min())} "
        f"({at(G.label(lo))}) to {fmt(mean.max())} ({at(G.label(hi))}) across settings."
    ]
    sstd = pd.to_numeric(G.g["sse_std"], errors="coerce")
    if sstd.notna().any():
        h = str(sstd.idxmax())
        out.append(
            f"The largest seed standard deviation of the squared error is {fmt(sstd.max())} per "
            f"image ({at(G.label(h))})."
        )
    return out


def methods(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    methods = G.g["method"].dropna().unique()
    if len(methods) < 2 and set(methods) <= {"constant"}:
        return []
    out = []
    for g in list(G.g.index)[:20]:
        g = str(g)
        method = str(G.g.loc[g, "method"])
        name = G.label(g) if G.label(g) == method else f"{G.label(g)} ({method})"
        out.append(
            f"{name}: final β_t = {fmt(G.v(g, 'beta_t'))}, rate "
            f"{fmt(G.v(g, 'kl'))} nats, squared error {fmt(G.v(g, 'sse'))} per image, ELBO "
            f"{fmt(G.v(g, 'elbo'))} nats."
        )
    picks = []
    for col, high, what in (
        ("sse", False, "lowest squared error"),
        ("elbo", True, "best ELBO"),
        ("marginal_kl", False, "smallest marginal KL"),
    ):
        g = G.best(col, high)
        if g:
            value = nats(G.v(g, col)) if col == "marginal_kl" else fmt(G.v(g, col))
            picks.append(f"{what}: {G.label(g)} ({value})")
    if picks:
        out.append("On these runs, " + "; ".join(picks) + ".")
    return out


def failures(sweep: SweepRecords) -> list[str]:
    t = sweep.table[~sweep.table["usable"]]
    out = []
    for _, r in t.iterrows():
        s = f"{r['run']}: {r['status']}"
        if ok(r["epochs_done"]) and ok(r["epochs"]):
            s += f" after {fmt_int(r['epochs_done'])} of {fmt_int(r['epochs'])} epochs"
        if r["error"]:
            s += f" ({str(r['error']).rstrip('.')})"
        elif r["status"] == "completed":
            s += " (no finite final rate or squared error)"
        elif r["status"] == "running":
            s += " (still running, or killed before it could record an end)"
        out.append(s + "; left out of the plots that need final values.")
    return out
