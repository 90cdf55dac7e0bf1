"""The PCA spectrum of the training images against each group's decoder noise level.

A linear VAE with Gaussian decoder noise σ² encodes exactly the principal components whose
variance exceeds σ², among its first M (Lucas et al. 2019, "Don't Blame the ELBO!"; Tipping &
Bishop 1999, probabilistic PCA); σ²_eff is the noise level a run's β amounts to.
"""

from __future__ import annotations

import math

import numpy as np

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.figures.placement import widen
from vaesweep.report.figures.plot_rd import reference_spectra
from vaesweep.report.figures.style import (
    Palette,
    Rendered,
    fmt,
    margins,
    ordered_groups,
    plt,
    render,
)


def fig_spectrum(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """PCA eigenvalues with each group's sigma2_eff: a linear VAE encodes exactly the components
    above the line (Lucas et al. 2019; Tipping & Bishop 1999)."""
    ok = sweep.table[sweep.table["sigma2_eff"] > 0]
    spectra = reference_spectra(sweep, ok)
    if not spectra:
        return None
    sp, m, _ = spectra[0]
    lam = sp.eigenvalues[sp.eigenvalues > 0]
    n = min(lam.size, max(2 * m, 32))
    fig, ax = plt.subplots(figsize=(10, 4.9))
    margins(fig, 0.8, 2.0, 0.85, 0.35)
    idx = np.arange(1, n + 1)
    ax.plot(idx, lam[:n], "o-", color="k", ms=3.5, lw=1, label="eigenvalue λ_i of the data")
    ax.axvline(
        m + 0.5,
        color="0.4",
        ls="--",
        lw=1,
        label=f"M = {m} latent dims: components right of this line cannot be encoded whatever σ²",
    )
    ax.set_yscale("log")
    groups = [g for g in ordered_groups(sweep.table) if g in set(ok["group"])]
    lo = min(lam[:n].min(), ok["sigma2_eff"].min())
    hi = max(lam[0], ok["sigma2_eff"].max())
    ax.set_ylim(lo / 2, hi * 2)
    # Labels at the right edge, a label's height (in decades of the axis) apart.
    min_gap = 0.055 * math.log10(hi * 4 / lo)
    levels = sorted(
        ((float(ok.loc[ok["group"] == g, "sigma2_eff"].median()), g) for g in groups),
    )
    # Levels closer than a label's height share one label naming every group on them, at
    # their middle (one label per level left the groups under a shared line unnamed: 3 labels
    # for 7 methods). Neighbouring runs of levels are a label's height apart, so are labels.
    shared: list[list[tuple[float, str]]] = []
    for s2, g in levels:
        ax.axhline(s2, color=palette.of(g)["color"], lw=1.6)
        if shared and math.log10(s2) - math.log10(shared[-1][-1][0]) < min_gap:
            shared[-1].append((s2, g))
        else:
            shared.append([(s2, g)])
    labels = [
        ax.text(
            n + 1.4,
            math.sqrt(members[0][0] * members[-1][0]),
            _level_label(members, palette, sp.eigenvalues, m),
            color=palette.of(members[0][1])["color"] if len(members) == 1 else "0.25",
            fontsize=7.5,
            va="center",
        )
        for members in shared
    ]
    ax.set_xlim(0, n + 1)
    ax.set(
        xlabel="principal component i",
        ylabel="variance, SSE per image (log scale)",
        title="Data PCA spectrum and each run's decoder noise level σ²_eff",
    )
    # Under the axes: inside, the key and the note on M lay across the lowest noise level.
    handles, keys = ax.get_legend_handles_labels()
    fig.legend(handles, keys, loc="lower center", ncol=2, frameon=False)
    widen(fig, max(t.get_window_extent().x1 for t in labels) / fig.dpi + 0.1)
    caption = (
        "The variance of the training images along each principal direction (pixels in [0, 1]) "
        "and, as horizontal lines, the Gaussian decoder noise σ²_eff that each β amounts to "
        "(σ² = β_sum/2 for squared error). A linear VAE encodes exactly the components above its "
        "line among the first M (Lucas et al. 2019); everything below is treated as noise and "
        "reconstructed as the mean."
    )
    return Rendered("spectrum", "PCA spectrum and noise levels", caption, render(fig))


def _level_label(
    members: list[tuple[float, str]], palette: Palette, eigenvalues: np.ndarray, m: int
) -> str:
    """ "β=1: σ² = 0.5, 3 above" for one group; the groups, the range of σ² and of the count of
    components above it for groups whose levels share one label.

    The count is of every recorded eigenvalue above σ², the dots above the line in the plot
    and summary.csv's ``lin_components_above`` that the reading quotes; where it exceeds M the
    label adds how many a linear VAE can keep (``lin_active_units``), as the reading does."""
    names = [palette.label[g] for _, g in members]
    who = ", ".join(names) if len(names) <= 8 else f"{names[0]} … {names[-1]} ({len(names)})"
    s2 = [v for v, _ in members]
    above = [int((eigenvalues > v).sum()) for v in s2]

    def span(lo: str, hi: str) -> str:
        return lo if lo == hi else f"{lo}–{hi}"

    kept = "" if max(above) <= m else f" ({'' if min(above) > m else 'at most '}M = {m} kept)"
    return (
        f"{who}: σ² = {span(fmt(min(s2)), fmt(max(s2)))}, "
        f"{span(str(min(above)), str(max(above)))} above{kept}"
    )
