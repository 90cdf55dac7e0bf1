"""The reading's "What should I pick?": the best setting for each use, with what holds it back.

A pick names a setting for reconstructions, for the calibrated likelihood and for prior samples.
Two things a reader must see at the pick itself, not elsewhere in the report:

* a setting that lost seeds (diverged, failed, not finished) is ranked on the seeds that
  survived; the mean of the survivors looks better than the setting is, and a β where training
  diverges once may diverge again, so the pick says how many of its seeds are missing and why;
* the smallest marginal KL (the aggregate posterior closest to the prior, Hoffman & Johnson
  2016) is smallest of all for a collapsed code, whose samples all decode to about the same
  image, so settings whose code carries almost nothing are not candidates for prior samples.
"""

from __future__ import annotations

import pandas as pd

from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.numbers import fmt, fmt_int
from vaesweep.report.reading.answer import calibrated_beta
from vaesweep.report.reading.phrases import LITTLE_RATE, Groups, at, nats, ok

#: How runs without final values ended, after "1 of its 3 seeds" (one) or "2 of ..." (several).
_ENDED = {
    "diverged": ("diverged", "diverged"),
    "failed": ("failed", "failed"),
    "running": ("has not finished", "have not finished"),
    "interrupted": ("was interrupted", "were interrupted"),
    "pending": ("has not started", "have not started"),
}
_NO_VALUES = ("left no usable final values", "left no usable final values")


def lost_seeds(G: Groups, g: str) -> str:
    """'' when every run of setting ``g`` has values; else how many lack them and why
    ("1 of its 3 seeds diverged"), counted from summary.csv's status column."""
    t = G.table
    runs = t[t["group"] == g]
    lost = runs[~runs["usable"].astype(bool)]
    if lost.empty:
        return ""
    counts = lost["status"].astype(str).value_counts(sort=False)

    def ended(status: str, n: int) -> str:
        return _ENDED.get(status, _NO_VALUES)[n > 1]

    whole = f"{fmt_int(len(lost))} of its {fmt_int(len(runs))} seeds"
    if len(counts) == 1:
        return f"{whole} {ended(str(counts.index[0]), len(lost))}"
    why = ", ".join(f"{fmt_int(n)} {ended(str(s), int(n))}" for s, n in counts.items())
    return f"{whole} have no final values ({why})"


def _caveat(G: Groups, g: str) -> str:
    """The warnings to put inside a pick's parentheses ('' when none): seeds lost, and seeds
    compared at their latest epoch because they have not finished (provisional numbers)."""
    out = ""
    lost = lost_seeds(G, g)
    if lost:
        kept = fmt_int(G.g.loc[g, "n_seeds"])
        out += f"; caution: {lost}, so these numbers are the mean of the other {kept} only"
    runs = G.table[G.table["group"] == g]
    n = int(runs["partial"].sum()) if "partial" in runs else 0
    if n:
        verb, its = ("has", "its") if n == 1 else ("have", "their")
        out += (
            f"; provisional: {fmt_int(n)} of its {fmt_int(len(runs))} seeds {verb} not "
            f"finished, compared at {its} latest epoch"
        )
    return out


def collapsed(G: Groups, g: str) -> bool:
    """Whether setting ``g``'s code carries too little to sample from: no dimension with
    :data:`INFORMATIVE_KL` nats on average over seeds, or a total rate below
    :data:`LITTLE_RATE` nats (fewer than e ~ 3 kinds of image told apart)."""
    inf, kl = G.v(g, "informative_dims"), G.v(g, "kl")
    return (ok(inf) and inf < 1) or (ok(kl) and kl < LITTLE_RATE)


def pick(G: Groups) -> str:
    """The answer to "What should I pick?" (every number a seeds.csv value)."""
    if len(G.g) == 1:
        return (
            f"With one setting ({G.label(str(G.g.index[0]))}) there is nothing to pick between; "
            "sweep β (or the other settings you are choosing among) and this answer names the "
            "best setting for reconstructions, for the calibrated likelihood and for prior "
            "samples."
        )
    parts = []
    g = G.best("mse", high=False)
    if g:
        parts.append(
            f"for reconstructions, {G.label(g)} (MSE {fmt(G.v(g, 'mse'))}, PSNR "
            f"{fmt(G.v(g, 'psnr'))} dB{_caveat(G, g)})"
        )
    g = G.best_calibrated_elbo()
    if g:
        parts.append(
            f"for the likelihood with the decoder noise fitted to each run's error (calibrated "
            f"ELBO), {G.label(g)} ({fmt(G.v(g, 'elbo_calib'))} nats per image{_caveat(G, g)})"
        )
    mse_groups = G.g[G.g["likelihood"] == "mse"]
    g = G.best("iwae_calib_bpd", high=False, rows=mse_groups) if not mse_groups.empty else None
    if g:
        parts.append(
            f"for the IWAE bound with σ² = each run's own MSE, dequantised, {G.label(g)} "
            f"({fmt(G.v(g, 'iwae_calib_bpd'))} bits/dim{_caveat(G, g)})"
        )
    # The IWAE at sigma^2 = 1/2 of an mse run is no useful density (worse than uniform):
    # offered only for likelihoods whose own density is the model.
    other = G.g[G.g["likelihood"] != "mse"]
    g = G.best("iwae_nll", high=False, rows=other) if not other.empty else None
    if g and other["likelihood"].nunique() == 1:
        parts.append(
            f"for the IWAE bound of the trained decoder, {G.label(g)} (NLL "
            f"{fmt(G.v(g, 'iwae_nll'))} nats, {fmt(G.v(g, 'bpd'))} bits/dim{_caveat(G, g)})"
        )
    samples = _for_samples(G)
    if samples:
        parts.append(samples)
    if not parts:
        return "The runs have no comparable final metrics."
    text = "It depends on what the model is for: " + "; ".join(parts) + "."
    star = calibrated_beta(G)
    if star and "passes 1" in star:
        text += (
            f" One principled choice is the β where β_calib ≈ 1 ({star.split(': ')[0]}), or "
            "loss.likelihood=gaussian_optimal, which sets σ² to the running MSE and so picks it "
            "during training (Rybkin et al. 2021)."
        )
    return text


def _for_samples(G: Groups) -> str | None:
    """The smallest marginal KL among settings whose code carries information and whose I(x;z)
    estimate is below its log N ceiling (else the marginal KL is only an upper bound); when
    none qualifies, why not, so a collapsed setting is never the silent answer."""
    if "marginal_kl_mean" not in G.g or G.g["marginal_kl_mean"].isna().all():
        return None
    sat = (
        pd.to_numeric(G.g["mi_saturated_mean"], errors="coerce")
        if "mi_saturated_mean" in G.g
        else pd.Series(0.0, index=G.g.index)
    )
    empty = [str(g) for g in G.g.index if collapsed(G, str(g))]
    rows = G.g[~(sat > 0) & ~G.g.index.isin(empty)]
    g = G.best("marginal_kl", high=False, rows=rows) if not rows.empty else None
    left_out = _collapsed_words(G, empty)
    lead = (
        "for prior samples that land where images were encoded (smallest marginal KL among the "
        "runs whose I(x;z) estimate is below its log N ceiling)"
    )
    if g:
        text = f"{lead}, {G.label(g)} ({nats(G.v(g, 'marginal_kl'))}{_caveat(G, g)})"
        return text + (f", not {left_out}" if left_out else "")
    if not empty:
        return None  # every informative setting saturates I(x;z): no ranking to offer
    text = f"{lead}, no setting here: {left_out}"
    if len(empty) < len(G.g):
        text += (
            ", and the others' I(x;z) estimates sit at their log N ceiling, so their marginal "
            "KL is only an upper bound that ranks nothing"
        )
    return text


def _collapsed_words(G: Groups, groups: list[str]) -> str:
    """Why the collapsed settings are no pick for samples, with their rates ('' for none)."""
    if not groups:
        return ""
    names = [G.label(g) for g in groups]
    who = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    if len(names) > 6:
        who = f"{', '.join(names[:5])} and {len(names) - 5} more"
    rates = ", ".join(f"{fmt(G.v(g, 'kl'))} nats {at(G.label(g))}" for g in groups[:6])
    whose = "whose code has" if len(names) == 1 else "whose codes have"
    return (
        f"{who}, {whose} collapsed (rate {rates}: below {fmt(LITTLE_RATE)} nat per "
        f"image, or no dimension above {INFORMATIVE_KL} nats), so every prior sample decodes "
        f"to about the same image however small the marginal KL"
    )
