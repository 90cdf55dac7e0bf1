"""The reading's short answers to the three questions vaesweep exists for (README, first
paragraph): is scaling the KL sound, what does β do to training, and which β to pick.

The answers rest on β as the Lagrange multiplier of a rate constraint (Higgins et al. 2017,
"β-VAE"), the rate-distortion plane whose slope is -β (Alemi et al. 2018, "Fixing a Broken
ELBO"), β as the decoder noise variance (Lucas et al. 2019, "Don't Blame the ELBO!"; Rybkin et
al. 2021, "Simple and Effective VAE Training with Calibrated Decoders") and the split of the
rate into information and prior mismatch (Hoffman & Johnson 2016, "ELBO surgery").
"""

from __future__ import annotations

import numpy as np

from vaesweep.report.numbers import fmt
from vaesweep.report.reading.answer import calibrated_beta
from vaesweep.report.reading.phrases import Groups, at, nats, ok


def build_questions(G: Groups, ends: tuple[str, str] | None) -> list[tuple[str, str]]:
    """(question, answer) pairs; the first two need two constant-β ends to compare."""
    qs = []
    q1 = "Is scaling the KL term sound, or does it drop the KL?"
    q2 = "What does β do?"
    q3 = "What should I pick?"
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
    g = G.best_calibrated_elbo()
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
    star = calibrated_beta(G)
    if star and "passes 1" in star:
        text += (
            " One principled choice is the β where β_calib ≈ 1 (see above), or "
            "loss.likelihood=gaussian_optimal, which sets σ² to the running MSE and so picks it "
            "during training (Rybkin et al. 2021)."
        )
    return text
