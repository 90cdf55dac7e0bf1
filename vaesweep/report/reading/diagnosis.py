"""Which explanation the numbers support: the reduction, β itself, or the latent size / length.

Three things make reconstructions of a small colour folder blurry or collapsed, and they call for
different fixes, so the reading tells them apart before it explains β:

* **the reduction**: ``loss.recon_reduction=mean`` (``F.mse_loss``'s default) divides the
  reconstruction by the D pixels, which multiplies β by D (β_sum = β·D; README, "What beta
  means"): at 64x64 RGB, β = 1 acts as 12,288 and the posterior collapses;
* **β itself**: under the sum convention β = 2σ² is the decoder noise (Lucas et al. 2019,
  "Don't Blame the ELBO!"), and a larger β encodes fewer directions;
* **the latent size or the training length**: when every latent is in use at every β, the code,
  not β, is the limit; when runs stopped while their validation objective was still falling
  (:mod:`vaesweep.evaluation.convergence`), their differences are partly training length
  (that sentence, and the β gap it weighs: :mod:`~vaesweep.report.reading.settling`).

This module writes the headline and the first two explanations. Every sentence quotes seeds.csv's group means (:class:`~vaesweep.report.reading.phrases.Groups`).
"""

from __future__ import annotations

import pandas as pd

from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.reading import settling
from vaesweep.report.reading.phrases import Groups, at, ok

#: PSNR gap (dB) between a mean- and a sum-reduction run that names the reduction as the cause.
REDUCTION_GAP_DB = 2.0


def single_setting(G: Groups) -> list[str]:
    """One setting: nothing to compare, so say so, and what a sweep over β would add."""
    if len(G.g) != 1:
        return []
    g = str(G.g.index[0])
    n = int(pd.to_numeric(G.g["n_seeds"]).iloc[0])
    seeds = "one run" if n == 1 else f"{n} seeds"
    return [
        f"This report has one setting, {G.label(g)} ({seeds}), so it compares nothing: it "
        f"describes that setting against its references. A sweep over β with everything else "
        f"the same (e.g. vaesweep sweep beta=0.01,0.1,1) would add what this one cannot show: "
        f"how the rate and the reconstruction error trade off as β changes, at which β the "
        f"posterior collapses, and which β matches the model's own error (β_calib = 1)."
    ]


def title(G: Groups, ends: tuple[str, str] | None) -> str | None:
    """The page's headline, from the numbers; None keeps the default.

    A collapse that the reduction explains (:func:`reduction_cause`) leads, since it is not about
    β at all; then what β did between the two ends: no clear difference, which end reconstructs
    better, and whether the runs stopped while still improving. "β does not matter yet" only
    when the unconverged ends do not already differ clearly, so the headline never contradicts
    the numbers below it.
    """
    if len(G.g) == 1:
        return f"One setting, {G.label(str(G.g.index[0]))}: no β comparison"
    about_beta = _beta_title(G, ends)
    cause = reduction_cause(G)
    if cause is None:
        if about_beta and settling.too_short_to_judge(G):
            return f"Too early to judge: {about_beta}"
        if about_beta and about_beta.startswith("the reconstructions at") and "worse" in about_beta:
            return "Why " + about_beta
        return _capital(about_beta) if about_beta else None
    what, beta, p_mean, p_sum, beta_sum = cause
    lead = (
        f"The reduction, not β, explains {what}: with loss.recon_reduction=mean at β={fmt(beta)} "
        f"(β_sum = {fmt(beta_sum)}) the PSNR is {fmt(p_mean)} dB against {fmt(p_sum)} dB with "
        f"the sum"
    )
    return f"{lead}; under the sum, {about_beta}" if about_beta else lead


#: Squared error above this multiple of the mean image's: the run did not learn to reconstruct
#: (a collapsed code decodes to about the mean image, about 1x; no β makes it worse).
UNLEARNED_SHARE = 1.5


def unlearned(G: Groups) -> list[str]:
    """Settings whose reconstructions are far worse than the mean image: an optimisation
    failure that the reader must see before reading any β effect from them."""
    bad = []
    for g in G.g.index:
        sse, tv = G.v(str(g), "sse"), G.v(str(g), "total_variance")
        if ok(sse) and ok(tv) and tv > 0 and sse > UNLEARNED_SHARE * tv:
            bad.append(f"{fmt(sse / tv)} times it {at(G.label(str(g)))}")
    if not bad:
        return []
    return [
        f"{'Some settings' if len(bad) > 1 else 'One setting'} did not learn to reconstruct: "
        f"the squared error is far above that of "
        f"always outputting the mean image ({'; '.join(bad[:6])}). No β explains that, since "
        f"even a code that carries nothing decodes to the mean image; suspect the optimisation "
        f"(a smaller train.lr, or train.grad_clip) before reading β from these runs."
    ]


def _capital(text: str) -> str:
    """First letter in upper case, except β (whose capital, Β, reads as a Latin B)."""
    return text if text.startswith("β") else text[0].upper() + text[1:]


def _beta_title(G: Groups, ends: tuple[str, str] | None) -> str | None:
    """What β did between the two ends, as a clause starting in lower case (None: no ends)."""
    gap = settling.beta_gap(G, ends)
    if ends is None or gap is None:
        if settling.ends_unconverged(G, ends):
            return "β does not matter yet: these runs stopped while still improving; train longer"
        return None
    share, better, worse = gap
    B, W = G.bname(better), G.bname(worse)
    still = settling.ends_unconverged(G, ends)
    if share < settling.CLEAR_GAP:
        if still:
            return "β does not matter yet: these runs stopped while still improving; train longer"
        lo, hi = ends
        return (
            f"β made no clear difference to the reconstructions: the squared error at "
            f"{G.bname(hi)} and {G.bname(lo)} is within "
            f"{fmt_pct(share) if share >= 0.01 else '1%'}"
        )
    psnr = f"PSNR {fmt(G.v(better, 'psnr'))} against {fmt(G.v(worse, 'psnr'))} dB"
    if still:
        moving = set(settling.unconverged(G).index)
        if better in moving and worse not in moving:
            # Only the better end could still improve: the gap can only be larger.
            return (
                f"the reconstructions at {B} are better than at {W} ({psnr}), and {at(B)} the "
                f"run was still improving when it stopped: the gap is if anything larger"
            )
        runs = "these runs" if better in moving else f"the run {at(W)}"
        return (
            f"the reconstructions at {B} are better than at {W} so far ({psnr}), but {runs} "
            f"stopped while still improving; train longer before reading the size of the gap"
        )
    if better == ends[0]:  # the usual case: the larger β reconstructs worse
        return f"the reconstructions at {W} are worse than at {B}"
    return f"the reconstructions at {B} are better than at {W}"


def latent_sentences(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    """When every latent is in use at every β, the latent size limits the code, not β."""
    rows = G.by_beta()
    if len(rows) < 2:  # "at every β" needs two of them
        return []
    # In use: active (Burda et al. 2016) and carrying at least 0.1 nats.
    au = pd.concat(
        [
            pd.to_numeric(rows["active_units_mean"], errors="coerce"),
            pd.to_numeric(rows["informative_dims_mean"], errors="coerce"),
        ],
        axis=1,
    ).min(axis=1, skipna=False)
    m = pd.to_numeric(rows["latent_dim_mean"], errors="coerce")
    if au.isna().any() or m.isna().any() or not (au >= m).all():
        return []
    hi = str(rows.index[-1])
    M = fmt_int(m.max())
    s = (
        f"The latent size, not β, limits the code here: all {M} latent dimensions are in use (active, "
        f"≥ 0.1 nats) at every β from {G.bname(str(rows.index[0]))} to {G.bname(hi)}"
    )
    lin = G.v(hi, "lin_active_units")
    if ok(lin) and lin >= m.max():
        s += (
            f", and even {at(G.bname(hi))} a linear VAE would encode every one of its {M} "
            f"principal directions (all have variance above σ² = {fmt(G.v(hi, 'sigma2_eff'))})"
        )
    return [
        s + ". β can only change what the code leaves out once the code has room: raise "
        "model.latent_dim, or use model=resconv, which sizes the code to the image (C·H·W/96)."
    ]


def _reduction_pairs(G: Groups) -> list[tuple[float, str, str, float, float]]:
    """(β, mean-reduction group, sum-reduction group, PSNR mean, PSNR sum) at each β that has
    both reductions with finite PSNR."""
    g = G.g
    if "recon_reduction" not in g or set(g["recon_reduction"].dropna()) != {"mean", "sum"}:
        return []
    out = []
    for beta, rows in g.groupby("beta_mean"):
        means = rows[rows["recon_reduction"] == "mean"]
        sums = rows[rows["recon_reduction"] == "sum"]
        if means.empty or sums.empty:
            continue
        mn, sm = str(means.index[0]), str(sums.index[0])
        p_mean, p_sum = G.v(mn, "psnr"), G.v(sm, "psnr")
        if ok(p_mean) and ok(p_sum):
            out.append((float(beta), mn, sm, p_mean, p_sum))  # type: ignore[arg-type]
    return out


def _reduction_loss(G: Groups, mn: str) -> str:
    """What the mean reduction cost: "the collapse" (no active unit) or "the lost detail"."""
    return "the collapse" if G.v(mn, "active_units") == 0 else "the lost detail"


def reduction_cause(G: Groups) -> tuple[str, float, float, float, float] | None:
    """(what, β, PSNR mean, PSNR sum, β_sum of the mean run) of the pair the reduction explains
    best: a collapse before lost detail, then the largest PSNR gap; None when no pair is
    :data:`REDUCTION_GAP_DB` apart."""
    pairs = [p for p in _reduction_pairs(G) if p[4] - p[3] >= REDUCTION_GAP_DB]
    if not pairs:
        return None
    beta, mn, _, p_mean, p_sum = max(
        pairs, key=lambda p: (_reduction_loss(G, p[1]) == "the collapse", p[4] - p[3])
    )
    return _reduction_loss(G, mn), beta, p_mean, p_sum, G.v(mn, "beta_sum")


def reduction_sentences(G: Groups) -> list[str]:
    """A mean- and a sum-reduction setting at the same β: does the reduction explain it?"""
    out = []
    for beta, mn, sm, p_mean, p_sum in _reduction_pairs(G):
        facts = (
            f"with loss.recon_reduction=mean at β={fmt(beta)} the squared error is averaged "
            f"over the D = {fmt_int(G.v(mn, 'n_pixels'))} pixels, an effective β_sum = "
            f"{fmt(G.v(mn, 'beta_sum'))}: the code carries {fmt(G.v(mn, 'kl'))} nats with "
            f"{fmt_int(G.v(mn, 'active_units'))} active units and PSNR {fmt(p_mean)} dB, against "
            f"{fmt(G.v(sm, 'kl'))} nats, {fmt_int(G.v(sm, 'active_units'))} units and "
            f"{fmt(p_sum)} dB with the sum at the same β"
        )
        if p_sum - p_mean >= REDUCTION_GAP_DB:
            out.append(f"The reduction, not β, explains {_reduction_loss(G, mn)}: {facts}.")
        else:
            out.append(f"The reduction makes little difference here: {facts}.")
    return out


def beta_sentence(G: Groups) -> list[str]:
    """What β itself did under the sum convention (the constant-β groups with the sum)."""
    rows = G.by_beta()
    if "recon_reduction" in rows:
        rows = rows[rows["recon_reduction"] != "mean"]
    if len(rows) < 2:
        return []
    lo, hi = str(rows.index[0]), str(rows.index[-1])
    return [
        f"β itself (sum over pixels, β = 2σ² of the decoder): from {G.bname(lo)} to "
        f"{G.bname(hi)} the PSNR goes from {fmt(G.v(lo, 'psnr'))} to {fmt(G.v(hi, 'psnr'))} dB "
        f"and the rate from {fmt(G.v(lo, 'kl'))} to {fmt(G.v(hi, 'kl'))} nats per image."
    ]


def explanations(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    """The three explanations, each with its numbers, in the order they should be ruled out."""
    out = reduction_sentences(G)
    if out:
        out += beta_sentence(G)
    out += latent_sentences(G, ends)
    return out
