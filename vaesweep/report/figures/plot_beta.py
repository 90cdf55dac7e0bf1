"""Final metrics against beta: bounds, active units, MSE/PSNR, information.

The x axis is ``beta_x`` (the configured beta; the final beta_t for scheduled or controlled
runs; beta_sum when runs differ in reduction; see :mod:`vaesweep.report.data.aggregate`), on a log
scale. Every run is a faint point; the group mean (over seeds) is a marker with a one-standard-
deviation error bar, joined by a line in beta order when all runs share one method.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.data.per_run import INFORMATIVE_KL
from vaesweep.report.figures.placement import legend_clear
from vaesweep.report.figures.style import (
    Palette,
    Rendered,
    centre_log_range,
    fmt,
    margins,
    ordered_groups,
    plt,
    render,
)


def _on_log_axis(ok: pd.DataFrame) -> pd.DataFrame:
    return ok[ok["beta_x"] > 0]


def _off_axis_note(sweep: SweepRecords) -> str:
    """The caption's sentence naming the runs with final values that a log beta axis cannot
    place, and why: a final beta_t of 0, or none logged (a capacity run held at its target)."""
    u = sweep.usable
    off = u[~(u["beta_x"] > 0)]
    if off.empty:
        return ""
    unlogged = int(off["beta_x"].isna().sum())
    why = (
        "no final β_t was logged"
        if unlogged == len(off)
        else ("their final β_t is ≤ 0" if not unlogged else "their final β_t is ≤ 0 or not logged")
    )
    names = ", ".join(dict.fromkeys(str(v) for v in off["label"]))
    return f" Not drawn, as {why}, so they have no place on the log β axis: {names}."


def _series(
    ax: Axes,
    sweep: SweepRecords,
    palette: Palette,
    column: str,
    *,
    label: str | None = None,
    line: str = "-",
    hollow: bool = False,
    colour: str | None = None,
    sign: float = 1.0,
) -> bool:
    """Group means with error bars of ``sign * column`` against beta_x; False if none to draw."""
    ok = _on_log_axis(sweep.usable)
    if column not in ok.columns or ok[column].notna().sum() == 0:
        return False
    ok = ok.assign(**{column: sign * ok[column]})
    groups = [g for g in ordered_groups(sweep.table) if g in set(ok["group"])]
    stats = ok.groupby("group")[[column, "beta_x"]].agg(["mean", "std", "size"])
    mean_x, mean_y = stats[("beta_x", "mean")], stats[(column, "mean")]
    xs: list[float] = []
    ys: list[float] = []
    # Settings that differ besides β (latent_dim=4 and 32) are separate curves in β.
    family = ok.groupby("group")["others"].first().fillna("") if "others" in ok else None
    fams: list[str] = []
    for g in groups:
        kw = palette.of(g)
        c = colour or kw["color"]
        x = mean_x.loc[g]
        y = mean_y.loc[g]
        if not math.isfinite(y):
            continue
        n = stats[(column, "size")].loc[g]
        if n > 1 and not hollow:
            rows = ok[ok["group"] == g]
            ax.plot(
                rows["beta_x"], rows[column], ls="", marker=kw["marker"], color=c, alpha=0.3, ms=4
            )
            ax.errorbar(x, y, yerr=stats[(column, "std")].loc[g], color=c, capsize=3, lw=1)
        face = "none" if hollow else c
        ax.plot(
            x,
            y,
            ls="",
            marker=kw["marker"],
            mfc=face,
            mec=c if hollow else "k",
            mew=1.2 if hollow else 0.5,
            ms=7,
            color=c,
            zorder=3,
        )
        xs.append(x)
        ys.append(y)
        fams.append(str(family.loc[g]) if family is not None else "")
    if len(sweep.methods) <= 1 and len(xs) > 1:
        for i, fam in enumerate(dict.fromkeys(fams)):
            idx = [k for k, f in enumerate(fams) if f == fam]
            order = np.argsort([xs[k] for k in idx])
            ax.plot(
                np.array([xs[k] for k in idx])[order],
                np.array([ys[k] for k in idx])[order],
                line,
                color=colour or "0.5",
                lw=1,
                zorder=1,
                label=label if i == 0 else None,
            )
    elif label:
        ax.plot([], [], ls="", marker="o", mfc="none" if hollow else "0.5", mec="0.3", label=label)
    ax.set_xscale("log")
    return True


def fig_beta_summary(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    ok = _on_log_axis(sweep.usable)
    if ok.empty:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.8))
    margins(fig, 0.75, 0.75, 0.55, 0.35, wspace=0.32, hspace=0.38)
    a, b, c, d = axes.ravel()
    # (a) bounds on log p(x), all nats per image: higher is better.
    _series(a, sweep, palette, "elbo", label="ELBO (β = 1) of the trained decoder")
    if sweep.usable["likelihood"].eq("mse").any():
        _series(
            a,
            sweep,
            palette,
            "elbo_calib",
            label="ELBO with σ² = the run's own MSE",
            line="--",
            hollow=True,
        )
    _series(
        a, sweep, palette, "iwae_nll", label="IWAE bound (−NLL)", line=":", hollow=True, sign=-1.0
    )
    if "iwae_elbo_nll" in sweep.usable and sweep.usable["iwae_elbo_nll"].notna().any():
        # The ELBO on the IWAE's own images and draws: below the IWAE bound by construction.
        _series(
            a,
            sweep,
            palette,
            "iwae_elbo_nll",
            label="ELBO on the IWAE's images and draws",
            line="-.",
            hollow=True,
            sign=-1.0,
            colour="tab:grey",
        )
    a.set(title="Log-likelihood bounds (higher is better)", ylabel="nats per image")
    legend_clear(a, frameon=False, fontsize=7.5)
    # (b) active units, informative dims and the linear prediction.
    _series(b, sweep, palette, "active_units", label="active units (Var_x E[z_j] > 0.01)")
    _series(
        b,
        sweep,
        palette,
        "informative_dims",
        label=f"dims with KL ≥ {INFORMATIVE_KL} nats",
        line="--",
        hollow=True,
        colour="tab:red",
    )
    _series(
        b,
        sweep,
        palette,
        "lin_active_units",
        label="linear theory #{λ_i > σ²_eff}",
        line=":",
        hollow=True,
        colour="k",
    )
    dims = sorted(int(d) for d in ok["latent_dim"].dropna().unique() if d > 0)
    m = ok["latent_dim"].max()
    for size in dims:  # one line per latent size swept (model.latent_dim=4,32)
        b.axhline(size, color="0.5", lw=0.8, ls="--")
        # Right of the plot, level with its line: inside, it sat on runs that use every dim.
        b.text(
            1.01,
            size,
            f"M = {size}",
            va="center",
            ha="left",
            fontsize=7.5,
            color="0.4",
            transform=b.get_yaxis_transform(),
        )
    # The legend in a band above M, which no count of dimensions can reach: pinned to the
    # lower left it lay across a beta sweep's falling units, and no corner is free of them.
    b.set(title="Latent dimensions in use", ylabel="dimensions", ylim=(-0.5, (m or 1) * 1.45))
    b.legend(frameon=False, fontsize=7.5, loc="upper right")
    from matplotlib.ticker import MaxNLocator

    top = m if m > 0 else 1
    b.set_yticks([v for v in MaxNLocator(6, integer=True).tick_values(0, top) if 0 <= v <= top])
    # (c) MSE with PSNR on the right: PSNR = -10 log10 MSE is a relabelled log MSE axis.
    _series(c, sweep, palette, "mse")
    c.set_yscale("log")
    centre_log_range(c)
    c.set(title="Reconstruction error", ylabel="MSE per pixel (log scale)")
    sec = c.secondary_yaxis(
        "right",
        functions=(
            lambda v: -10 * np.log10(np.clip(v, 1e-12, None)),
            lambda p: 10 ** (-np.asarray(p) / 10),
        ),
    )
    sec.set_ylabel("PSNR, dB")
    psnr = ok["psnr"].dropna()
    if not psnr.empty:
        from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullLocator

        lo, hi = c.get_ylim()
        ticks = MaxNLocator(5).tick_values(-10 * np.log10(hi), -10 * np.log10(lo))
        sec.set_yticks(ticks)
        sec.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        sec.yaxis.set_minor_locator(NullLocator())
    # (d) bits per dimension, or the rate when no IWAE estimate was made.
    if ok["bpd"].notna().any():
        calib = "iwae_calib_bpd" in ok and ok["iwae_calib_bpd"].notna().any()
        _series(d, sweep, palette, "bpd", label="decoder's own density" if calib else None)
        if calib:  # mse runs: sigma^2 = 1/2 ranks nothing; sigma^2 = own MSE is the fair bound
            _series(
                d,
                sweep,
                palette,
                "iwae_calib_bpd",
                label="mse: σ² = the run's own MSE",
                line="--",
                hollow=True,
            )
            legend_clear(d, frameon=False, fontsize=7.5)
        d.set(title="IWAE bits per dimension (lower is better)", ylabel="bits / dim")
    else:
        _series(d, sweep, palette, "kl")
        d.set_yscale("log")
        centre_log_range(d)
        d.set(title="Rate", ylabel="KL, nats per image (log scale)")
    for ax in axes.ravel():
        ax.set_xlabel(sweep.beta_label + " (log scale)")
    caption = (
        "Final validation metrics against β (log scale). Markers: group means over seeds with "
        "one-standard-deviation bars; faint markers: single runs. Active units follow Burda et "
        "al. (2016); the black dotted line is the linear-Gaussian prediction of how many "
        "dimensions a linear VAE keeps at each run's σ²_eff (Lucas et al. 2019)."
    )
    if sweep.usable["likelihood"].eq("mse").any():
        caption += (
            " For mse runs the ELBO is that of a Gaussian decoder with σ² = ½, the noise level "
            "β = 1 assumes, so it favours β near 1 by construction; the calibrated ELBO uses "
            "each run's own MSE as σ² and compares runs on the noise level they reached."
        )
    caption += _off_axis_note(sweep)
    return Rendered(
        "beta_summary", "ELBO, active units and MSE/PSNR against β", caption, render(fig)
    )


def fig_information(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """I_q(x;z) and KL(q(z)||p(z)) against beta with the log N ceiling: the rate splits into the
    two (Hoffman & Johnson 2016, "ELBO surgery"), and I_q cannot exceed log N."""
    ok = _on_log_axis(sweep.usable)
    if ok.empty or ok["mi"].notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    margins(fig, 0.8, 0.2, 0.55, 0.35)
    _series(ax, sweep, palette, "kl", label="rate KL (= I + marginal KL)", colour="0.35")
    _series(
        ax,
        sweep,
        palette,
        "mi",
        label="mutual information I_q(x; z)",
        line="--",
        hollow=True,
        colour="tab:blue",
    )
    _series(
        ax,
        sweep,
        palette,
        "marginal_kl",
        label="marginal KL(q(z) || p(z))",
        line=":",
        hollow=True,
        colour="tab:red",
    )
    ceiling = ok["mi_ceiling"].dropna()
    if not ceiling.empty:
        ax.axhline(ceiling.max(), color="tab:blue", lw=0.8, ls="-.")
        ax.text(
            ok["beta_x"].max(),
            ceiling.max(),
            f"ceiling log N = {fmt(ceiling.max())} nats ",
            color="tab:blue",
            fontsize=7.5,
            va="bottom",
            ha="right",
        )
    # The estimators can dip just below zero; a symmetric log axis keeps those points visible
    # without spending half the figure on negative decades.
    ax.set_yscale("symlog", linthresh=0.01)
    values = ok[["kl", "mi", "marginal_kl"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    low = min(float(values.min()), 0.0)
    ax.set_ylim(low * 1.5 if low < 0 else 0.0, float(values.max()) * 2.5)
    ax.set(
        xlabel=sweep.beta_label + " (log scale)",
        ylabel="nats per image (symmetric log scale)",
        title="Where the rate goes: information about x vs mismatch with the prior",
    )
    legend_clear(ax, frameon=False, fontsize=8)
    caption = (
        "The rate splits into the information the code carries about the image, I_q(x; z), and "
        "the marginal KL between the aggregate posterior q(z) and the prior N(0, I) (Hoffman & "
        "Johnson 2016). The estimator cannot exceed log N for N evaluation images. A large "
        "marginal KL means prior samples land where no image was encoded ('holes'), which is "
        "what a large marginal KL costs when you sample. Small negative values are estimator "
        "noise." + _off_axis_note(sweep)
    )
    return Rendered(
        "information", "Mutual information and marginal KL against β", caption, render(fig)
    )
