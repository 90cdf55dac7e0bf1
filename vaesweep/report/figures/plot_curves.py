"""Figures over training: loss components per epoch, beta_t per step, gradient balance.

One line per run, coloured by its group (:class:`~vaesweep.report.figures.style.Palette`); runs that
stopped early (diverged, failed, killed) keep the epochs they reached, ended by a cross.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.figures.placement import group_legend
from vaesweep.report.figures.style import (
    Palette,
    Rendered,
    margins,
    ordered_groups,
    plt,
    render,
)

_UNIT = {
    "mse": "SSE per image",
    "gaussian": "nats per image",
    "gaussian_learned": "nats per image",
    "gaussian_optimal": "nats per image",
    "bernoulli": "nats per image (BCE)",
    "cbernoulli": "nats per image",
    "laplace": "nats per image",
    "dlogistic": "nats per image",
}


def recon_column(sweep: SweepRecords) -> tuple[str, str]:
    """(column, axis label) of the reconstruction term: ``recon`` in its unit when every run
    shares one likelihood, else ``sse``, which every likelihood logs."""
    lik = sweep.table["likelihood"].dropna().unique().tolist()
    if len(lik) == 1:
        return "recon", f"reconstruction term ({_UNIT.get(lik[0], 'likelihood units')})"
    return "sse", "squared error per image (SSE; likelihoods differ, so not their own term)"


def _lines(
    ax: Axes,
    sweep: SweepRecords,
    palette: Palette,
    column: str,
    x: str = "epoch",
    splits: tuple[str, ...] = ("val", "train"),
    curves: pd.DataFrame | None = None,
) -> set[str]:
    """One line per run and split; the groups that got a line (none: no run has the column)."""
    curves = sweep.curves if curves is None else curves
    drawn: set[str] = set()
    if column not in curves.columns or curves[column].notna().sum() == 0:
        return drawn
    alpha = 0.9 if len(sweep.runs) <= 20 else 0.45
    style = {"val": "-", "train": "--"}
    for key, rows in curves.groupby("run", sort=False):
        t = sweep.table.loc[key]
        kw = palette.of(str(t["group"]))
        for split in splits:
            r = rows[rows["split"] == split]
            y = r[column].to_numpy(dtype=float)
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            xs = r[x].to_numpy(dtype=float)[ok]
            lw = 1.6 if split == "val" else 1.0
            ax.plot(xs, y[ok], style[split], color=kw["color"], lw=lw, alpha=alpha)
            drawn.add(str(t["group"]))
            if split != "val":
                continue
            if t["status"] in ("diverged", "failed", "running", "unknown"):
                ax.plot(xs[-1], y[ok][-1], "x", color=kw["color"], ms=8, mew=2)
            elif len(palette.marker_of_method) > 1:
                # The method by its marker at the line's end, as the legend shows it: the
                # colour alone (beta) may be shared by several methods.
                ax.plot(xs[-1], y[ok][-1], ls="", ms=7, alpha=alpha, **kw)
    ax.set_yscale("log")
    return drawn


def fig_loss_curves(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    col, label = recon_column(sweep)
    if sweep.curves.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    margins(fig, 0.75, 0.2, 0.55, 0.35, wspace=0.25)
    ok_r = _lines(axes[0], sweep, palette, col)
    ok_k = _lines(axes[1], sweep, palette, "kl")
    if not (ok_r or ok_k):
        plt.close(fig)
        return None
    axes[0].set(title="Reconstruction", xlabel="epoch", ylabel=label + ", log scale")
    axes[1].set(title="KL (rate)", xlabel="epoch", ylabel="KL(q(z|x) || p(z)), nats per image, log")
    _whole_epochs(axes)
    # Only groups with a line: a run that diverged before its first epoch has none.
    groups = [g for g in ordered_groups(sweep.table) if g in ok_r | ok_k]
    group_legend(axes[1], palette, groups, outside=True, title="run group")
    from matplotlib.lines import Line2D

    axes[0].legend(
        handles=[
            Line2D([], [], color="k", ls="-", lw=1.6, label="validation"),
            Line2D([], [], color="k", ls="--", lw=1.0, label="train"),
            Line2D([], [], color="k", ls="", marker="x", label="run stopped early"),
        ],
        frameon=False,
    )
    caption = (
        "Both axes on log scales: validation solid, training dashed, one line per run. A KL that falls towards zero within a few epochs is posterior collapse; "
        "the gap between the reconstruction curves of different β is what β buys."
    )
    return Rendered("loss_curves", "Loss components per epoch", caption, render(fig))


def _varies(sweep: SweepRecords) -> bool:
    c = sweep.curves
    if "beta_t" not in c.columns:
        return False
    per_run = c.groupby("run")["beta_t"].agg(lambda s: s.nunique(dropna=True))
    return bool((per_run > 1).any()) or len(sweep.methods) > 1


def fig_beta_t(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """beta_t against optimiser step, one line per run: the weight that schedules and controllers
    (Sonderby et al. 2016, Fu et al. 2019, Burgess et al. 2018, Rezende & Viola 2018, Shao et
    al. 2020) put on the KL, on the same axis as a constant beta."""
    if not _varies(sweep):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    margins(fig, 0.75, 0.2, 0.55, 0.35, wspace=0.25)
    drawn = _lines(axes[0], sweep, palette, "beta_t", x="step", splits=("val",))
    drawn |= _lines(axes[1], sweep, palette, "kl", x="step", splits=("val",))
    axes[0].set(
        title="KL weight in effect (β_t)", xlabel="optimiser step", ylabel="β_t (log scale)"
    )
    axes[1].set(title="KL (rate) it produced", xlabel="optimiser step", ylabel="KL, nats (log)")
    groups = [g for g in ordered_groups(sweep.table) if g in drawn]
    group_legend(axes[1], palette, groups, outside=True)
    caption = (
        "β_t, the weight on the KL at the end of each epoch in the canonical convention, for "
        "each run (log scale), and the rate it produced. Schedules (warm-up, cyclical) follow a "
        "fixed curve; controllers (capacity, GECO, PI) move β_t to hit a KL or reconstruction "
        "target, so their final β_t is what places them on the β axis of the other figures. "
        "Runs whose β_t is 0 at every epoch cannot be drawn on the log scale."
    )
    return Rendered("beta_t", "β_t over training", caption, render(fig))


def fig_grad_balance(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """||d recon / d(mu, logvar)|| against ||d beta_t KL / d(mu, logvar)|| per epoch (plot 15)."""
    c = sweep.curves
    if not {"grad_norm_recon", "grad_norm_kl"} <= set(c.columns):
        return None
    if c["grad_norm_recon"].notna().sum() == 0:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    margins(fig, 0.75, 0.2, 0.55, 0.35, wspace=0.25)
    ratio = c["grad_norm_kl"] / c["grad_norm_recon"]
    drawn: set[str] = set()
    for key, rows in c[c["split"] == "val"].groupby("run", sort=False):
        group = str(sweep.table["group"].loc[key])
        for col, ls in (("grad_norm_recon", "-"), ("grad_norm_kl", "--")):
            y = rows[col].to_numpy(dtype=float)
            ok = np.isfinite(y) & (y > 0)
            if ok.any():
                x = rows["epoch"].to_numpy()[ok]
                axes[0].plot(x, y[ok], ls, color=palette.of(group)["color"], lw=1.3)
                drawn.add(group)
    axes[0].set_yscale("log")
    drawn |= _lines(
        axes[1], sweep, palette, "grad_ratio", splits=("val",), curves=c.assign(grad_ratio=ratio)
    )
    axes[1].axhline(1.0, color="k", lw=0.8, ls=":")
    _whole_epochs(axes)
    axes[0].set(
        title="Gradient norms at the encoder outputs",
        xlabel="epoch",
        ylabel="‖∇_(μ, log σ²)‖ (log scale)",
    )
    axes[1].set(
        title="Balance: ‖∇ β_t·KL‖ / ‖∇ recon‖",
        xlabel="epoch",
        ylabel="ratio (log scale; 1 = equal pull)",
    )
    from matplotlib.lines import Line2D

    axes[0].legend(
        handles=[
            Line2D([], [], color="k", ls="-", label="reconstruction"),
            Line2D([], [], color="k", ls="--", label="β_t · KL"),
        ],
        frameon=False,
    )
    groups = [g for g in ordered_groups(sweep.table) if g in drawn]
    group_legend(axes[1], palette, groups, outside=True)
    caption = (
        "What β does to gradient descent: the pull of the "
        "reconstruction term and of the weighted KL on the encoder outputs, measured on "
        "validation batches. The sizes of the two loss values say nothing about their balance; "
        "these gradients do. Above 1 the KL's pull towards the prior dominates."
    )
    return Rendered("grad_balance", "Gradient balance", caption, render(fig))


def _whole_epochs(axes: Sequence[Axes]) -> None:
    """Epoch ticks at whole numbers: a 3-epoch run got ticks at 1.00, 1.25, ... ."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
