"""The final KL of every latent dimension, one column per group, as a heat map.

Rows are latent dimensions ranked by their KL within each column (mean over seeds of the
sorted values), in nats per image on a log colour scale: the dimensions a run uses stand out
from the collapsed ones, whose KL is near zero (the posterior equals the prior; Bowman et al.
2016, "Generating Sentences from a Continuous Space").
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.figures.placement import text_width
from vaesweep.report.figures.style import (
    DPI,
    Palette,
    Rendered,
    fmt,
    margins,
    ordered_groups,
    plt,
    render,
)


def fig_kl_heatmap(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """KL per latent dimension, sorted within each column, one column per group (plot 8)."""
    ok = sweep.usable
    groups = [g for g in ordered_groups(sweep.table) if g in set(ok["group"])]
    cols, labels, counts = [], [], []
    for g in groups:
        dims = [np.sort(sweep.kl_dims[k])[::-1] for k in ok.index[ok["group"] == g]]
        dims = [d for d in dims if d.size]
        if not dims:
            continue
        width = max(d.size for d in dims)
        stack = np.full((len(dims), width), np.nan)
        for i, d in enumerate(dims):
            stack[i, : d.size] = d
        cols.append(np.nanmean(stack, axis=0))
        labels.append(palette.label[g])
        # Each run's own count, averaged as the tables and the reading average it (a count
        # of the averaged column can differ: 14 against 13.5).
        counts.append(float(np.mean([(d >= INFORMATIVE_KL).sum() for d in dims])))
    if not cols:
        return None
    height = max(c.size for c in cols)
    grid = np.full((height, len(cols)), np.nan)
    for j, c in enumerate(cols):
        grid[: c.size, j] = c
    pos = grid[np.isfinite(grid) & (grid > 0)]
    if pos.size == 0:
        return None
    vmin = max(float(pos.min()), 1e-3)
    fig_w = min(3.2 + 0.9 * len(cols), 17.0)
    ticks = [f"{lab}\n{fmt(n)} dims ≥ {INFORMATIVE_KL}" for lab, n in zip(labels, counts)]
    # Column labels wider than their column overprinted their neighbours (20 groups of
    # "constant, β=0.001"): those are written upwards, under a bottom margin that holds them.
    column = (fig_w - 0.75 - 1.4) / len(cols) * DPI
    upright = text_width(ticks, 7.5) > 0.95 * column
    if upright:
        ticks = [t.replace("\n", ": ") for t in ticks]
    bottom = 0.75 if not upright else 0.4 + text_width(ticks, 7.5) / DPI
    fig, ax = plt.subplots(figsize=(fig_w, min(2.0 + 0.28 * height, 14) + bottom - 0.75))
    margins(fig, 0.75, 1.4, bottom, 0.35)
    im = ax.imshow(
        np.clip(grid, vmin, None),
        aspect="auto",
        cmap="magma",
        origin="upper",
        norm=LogNorm(vmin=vmin, vmax=max(float(pos.max()), vmin * 10)),
    )
    if grid.size <= 400:
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                light = v < math.sqrt(vmin * pos.max())
                ax.text(
                    j,
                    i,
                    fmt(v, 2),
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if light else "black",
                )
    ax.set_xticks(range(len(cols)), ticks, fontsize=7.5, rotation=90 if upright else 0)
    step = max(1, height // 16)
    ax.set_yticks(range(0, height, step), [str(i + 1) for i in range(0, height, step)])
    ax.set(ylabel="latent dimension, ranked by its KL", title="KL per latent dimension (nats)")
    ax.grid(False)
    w, h = fig.get_size_inches()
    cax = fig.add_axes((1 - 1.15 / w, bottom / h, 0.18 / w, 1 - (bottom + 0.35) / h))
    # Values under the scale's floor show in its darkest colour: the bar's pointed end says so.
    below = bool((grid[np.isfinite(grid)] < vmin).any())
    fig.colorbar(
        im,
        cax=cax,
        label="KL per dimension, nats (log scale)",
        extend="min" if below else "neither",
    )
    caption = (
        "Final validation KL of every latent dimension, sorted from most to least informative "
        "within each column (mean over seeds of the sorted values). The count under each "
        f"column is the number of dimensions carrying at least {INFORMATIVE_KL} nats (each "
        "run's count, averaged over seeds, as in the tables); a column "
        "that is dark all the way down has collapsed to the prior."
    )
    return Rendered("kl_heatmap", "KL per latent dimension", caption, render(fig))
