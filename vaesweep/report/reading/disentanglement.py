"""The reading's disentanglement section: what a larger β bought, at what cost, and how much
the seeds matter. Only for runs on a dataset with known factors (dsprites, shapes).

Every number is a group mean over seeds from ``seeds.csv`` (or its standard deviation). The
direction of a score with β is stated only when the two ends of the β range differ by more than
the larger seed spread of the two, so noise is not read as a trend (Locatello et al. 2019 found
seeds and hyperparameters matter as much as the model for these scores). With one seed per β
there is no spread, so single runs closer than :data:`SINGLE_RUN_MARGIN` are not read as a
trend either. A score that peaks between the ends is named at its peak, and a β whose code has
collapsed (no active latent) is flagged: the scores are blind to the scale of the means.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from vaesweep.report.numbers import fmt
from vaesweep.report.reading.phrases import Groups, at

#: Scores the reading discusses, with the name it uses for each.
SCORES = {
    "mig": "MIG",
    "factor_vae": "the FactorVAE score",
    "beta_vae": "the BetaVAE score",
    "dci_disentanglement": "DCI disentanglement",
    "sap": "SAP",
}


#: Without seeds to measure a spread, two single runs' scores (all on [0, 1]) closer than this
#: are not read as a trend.
SINGLE_RUN_MARGIN = 0.05


def _std(G: Groups, group: str, col: str) -> float:
    try:
        value: Any = G.g.loc[group, f"{col}_std"]
        return float(value)
    except (KeyError, TypeError, ValueError):
        return math.nan


def _margin(G: Groups, col: str, *groups: str) -> tuple[float, str]:
    """How far apart two group means must be to be read as different, and what that bar is."""
    stds = [s for g in groups if math.isfinite(s := _std(G, g, col)) and _seeds(G, g) >= 2]
    if stds:
        return max(stds), "the seed spread"
    return SINGLE_RUN_MARGIN, f"{SINGLE_RUN_MARGIN}: single runs, no seed spread"


def _seeds(G: Groups, group: str) -> int:
    try:
        value: Any = G.g.loc[group, "n_seeds"]
        return int(float(value))
    except (KeyError, TypeError, ValueError):
        return 0


def _trend(G: Groups, col: str, lo: str, hi: str, rows: pd.DataFrame) -> str | None:
    a, b = G.v(lo, col), G.v(hi, col)
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    margin, bar = _margin(G, col, lo, hi)
    ends = f"{fmt(a)} {at(G.bname(lo))}", f"{fmt(b)} {at(G.bname(hi))}"
    if abs(b - a) <= margin:
        out = f"{SCORES[col]} is about the same, {ends[0]} and {ends[1]} (apart by less than {bar})"
    else:
        out = f"{SCORES[col]} {'rises' if b > a else 'falls'} from {ends[0]} to {ends[1]}"
    peak = G.best(col, high=True, rows=rows)
    if peak and peak not in (lo, hi):
        top = G.v(peak, col)
        if top - max(a, b) > _margin(G, col, peak, lo, hi)[0]:
            out += f", with its peak in between: {fmt(top)} {at(G.bname(peak))}"
    return out


def _collapsed(G: Groups, rows: pd.DataFrame) -> str | None:
    """A sentence on the βs whose code has no active latent, or None."""
    names = [G.bname(str(g)) for g in rows.index if G.v(str(g), "active_units") == 0]
    if not names:
        return None
    return (
        f"At {' and '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)} "
        "no latent is active (the code has collapsed to the prior): "
        "the scores there rate means that barely vary, and MIG, SAP and DCI do not see their "
        "scale, so read them as noise; the FactorVAE score, which leaves out latents with "
        "std < 0.05, gives such a code 0."
    )


def disentanglement(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    scored = [c for c in SCORES if f"{c}_mean" in G.g.columns and G.g[f"{c}_mean"].notna().any()]
    if not scored:
        return []
    rows = G.by_beta()
    rows = rows[rows["mig_mean"].notna()] if "mig_mean" in rows else rows.iloc[0:0]
    out: list[str] = []
    if len(rows) < 2 or ends is None:
        g = str(G.g.index[0])
        values = ", ".join(f"{SCORES[c]} {fmt(G.v(g, c))}" for c in scored)
        return [f"Disentanglement {at(G.label(g))}: {values} (1 is the best each can reach)."]
    lo, hi = str(rows.index[0]), str(rows.index[-1])
    trends = [t for c in scored if (t := _trend(G, c, lo, hi, rows))]
    out.append("Between the smallest and the largest β, " + "; ".join(trends) + ".")
    best = {c: G.best(c, high=True, rows=rows) for c in scored}
    names = {c: G.bname(g) for c, g in best.items() if g}
    if len(set(names.values())) > 1:
        parts = ", ".join(f"{SCORES[c]} {at(n)}" for c, n in names.items())
        out.append(
            f"The scores disagree on the best β: each is highest at a different one ({parts})."
        )
    mig_best = best.get("mig")
    if mig_best and mig_best != lo:
        cost = G.v(mig_best, "mse") / G.v(lo, "mse")
        out.append(
            f"The cost in reconstruction: at {G.bname(mig_best)}, where MIG is highest "
            f"({fmt(G.v(mig_best, 'mig'))}), the MSE per pixel is {fmt(G.v(mig_best, 'mse'))}, "
            f"{fmt(cost)} times the {fmt(G.v(lo, 'mse'))} {at(G.bname(lo))}."
        )
    elif mig_best == lo:
        out.append(
            f"MIG is highest at the smallest β ({G.bname(lo)}): a larger β bought no "
            "disentanglement here, only a higher reconstruction error."
        )
    if collapsed := _collapsed(G, rows):
        out.append(collapsed)
    n = pd.to_numeric(G.g["n_seeds"], errors="coerce")
    if n.max() >= 2 and "mig_std" in G.g:
        std = pd.to_numeric(rows["mig_std"], errors="coerce")
        means = pd.to_numeric(rows["mig_mean"], errors="coerce")
        spread = float(means.max() - means.min())
        worst = float(std.max())
        verdict = (
            "as large as the differences between β, so single runs cannot rank these β"
            if worst >= 0.5 * spread
            else "smaller than the differences between β"
        )
        out.append(
            f"Seeds: the largest standard deviation of MIG over seeds is {fmt(worst)}, against a "
            f"range of {fmt(spread)} between the β means: {verdict}."
        )
    else:
        out.append(
            "With one seed per β these scores have no error bars; Locatello et al. (2019) found "
            "the seed matters as much as β, so run several (seed=0,1,2) before trusting a trend."
        )
    if "data" in G.table and bool((G.table["data"] == "dsprites").any()):
        out.append(
            "On dSprites the square looks the same every 90° and the ellipse every 180°, so no "
            "code can recover orientation fully; this caps every score's orientation part."
        )
    return out
