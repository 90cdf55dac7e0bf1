"""The rate-distortion plane, against the linear-Gaussian reference.

Rate-distortion plane (Alemi et al. 2018, "Fixing a Broken ELBO"): rate R = KL in nats
per image on x, distortion on y (SSE per image for Gaussian-family likelihoods and whenever
likelihoods are mixed, since every run logs it; the NLL in nats when all runs share one
non-Gaussian likelihood). One point per group (mean over seeds, error bars one standard
deviation), lines of constant R + D, and the reverse water-filling curve of a linear VAE
(Lucas et al. 2019, "Don't Blame the ELBO!"): a point above that curve does worse than PCA at
the same rate.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.data.linear_reference import Spectrum, rd_curve
from vaesweep.report.data.per_run import GAUSSIAN
from vaesweep.report.figures.placement import (
    annotate_points,
    group_legend,
    place_text,
    point_boxes,
)
from vaesweep.report.figures.style import (
    Palette,
    Rendered,
    fmt,
    log_scale_if_spans,
    margins,
    ordered_groups,
    plt,
    render,
)

#: Above this many groups the per-point labels and linear-prediction markers become clutter.
MAX_ANNOTATED = 12


def distortion_label(sweep: SweepRecords) -> str:
    if sweep.distortion == "nll":
        lik = sweep.table["likelihood"].dropna().iloc[0]
        return f"distortion D = −log p(x|z), nats per image ({lik})"
    lik = set(sweep.table["likelihood"].dropna())
    note = "" if lik <= GAUSSIAN else " — every run's squared error, likelihoods differ"
    return f"distortion: squared error per image (SSE, pixels in [0, 1]){note}"


def reference_spectra(sweep: SweepRecords, rows: pd.DataFrame) -> list[tuple[Spectrum, int, str]]:
    """Distinct (spectrum, latent dim, data name) among the given runs, most common first."""
    seen: Counter[tuple] = Counter()
    keep: dict[tuple, tuple[Spectrum, int, str]] = {}
    for key, row in rows.iterrows():
        sp = sweep.spectra.get(str(key))
        m = row["latent_dim"]
        if sp is None or not m > 0:
            continue
        k = (sp.key(), int(m))
        seen[k] += 1
        keep.setdefault(k, (sp, int(m), str(row.get("data") or "data")))
    return [keep[k] for k, _ in seen.most_common()]


def _group_points(ok: pd.DataFrame, ycol: str) -> pd.DataFrame:
    g = ok.groupby("group", sort=False)
    out = pd.DataFrame(
        {
            "x": g["kl"].mean(),
            "y": g[ycol].mean(),
            "xerr": g["kl"].std(ddof=1),
            "yerr": g[ycol].std(ddof=1),
            "n": g.size(),
            "lin_rate": g["lin_rate"].mean(),
            "lin_sse": g["lin_sse"].mean(),
        }
    )
    return out


def fig_rate_distortion(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    ok = sweep.usable
    if ok.empty:
        return None
    ycol = sweep.distortion
    pts = _group_points(ok, ycol)
    groups = [g for g in ordered_groups(sweep.table) if g in pts.index]
    fig, ax = plt.subplots(figsize=(9, 6.6))
    margins(fig, 0.8, 0.2, 1.15, 0.35)
    annotate = len(groups) <= MAX_ANNOTATED
    for g in groups:
        p = pts.loc[g]
        kw = palette.of(g)
        rows = ok[ok["group"] == g]
        if p["n"] > 1:
            ax.plot(rows["kl"], rows[ycol], ls="", ms=4, alpha=0.35, **kw)
            ax.errorbar(
                p["x"],
                p["y"],
                xerr=p["xerr"],
                yerr=p["yerr"],
                ls="",
                capsize=3,
                color=kw["color"],
                lw=1,
                zorder=3,
            )
        ax.plot(p["x"], p["y"], ls="", ms=9, mec="k", mew=0.6, zorder=4, **kw)
    xs = pd.concat([ok["kl"], pts["x"] - pts["xerr"].fillna(0), pts["x"] + pts["xerr"].fillna(0)])
    ys = pd.concat([ok[ycol], pts["y"] - pts["yerr"].fillna(0), pts["y"] + pts["yerr"].fillna(0)])
    spectra = reference_spectra(sweep, ok) if ycol == "sse" else []
    linear = _linear_points(pts.loc[groups]) if spectra and annotate else pts.iloc[:0]
    if spectra:
        # The references are what the caption asks the reader to compare with: the mean
        # image's SSE, the curve under every point and the hollow circles stay in view (runs
        # far worse than the curve put all of them below the runs' own range).
        ys = pd.concat(
            [
                ys,
                pd.Series([spectra[0][0].total_variance]),
                ok["lin_sse_at_rate"],
                linear["lin_sse"],
            ]
        )
        xs = pd.concat([xs, linear["lin_rate"]])
    xlog = log_scale_if_spans(ax, xs[xs > 0], "x", decades=1.0)
    ylog = log_scale_if_spans(ax, ys[ys > 0], "y", decades=1.0)
    xlim = _limits(xs, xlog, floor=0.0)
    ylim = _limits(ys, ylog, floor=0.0)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    # The groups right of the plot, where no point, leader or curve can lie under them; first,
    # since a beta colour bar narrows the plot that the labels below must stay inside.
    if not annotate or len(sweep.methods) > 1:
        group_legend(ax, palette, groups, outside=True)
    if annotate:
        annotate_points(
            ax,
            [
                (pts["x"].loc[g], pts["y"].loc[g], palette.label[g], palette.of(g)["color"])
                for g in groups
            ],
            # The single seeds drawn faint around a group's mean.
            obstacles=[
                (r["kl"], r[ycol]) for _, r in ok.iterrows() if pts.loc[r["group"], "n"] > 1
            ],
        )
    _iso_lines(ax, pts.loc[groups], xlim, ylim, xlog, sweep)
    for i, (sp, m, data) in enumerate(spectra[:3]):
        _, r, d = rd_curve(sp, m, n=300, max_rate=float(xlim[1]))
        ls = ("--", "-.", ":")[i]
        name = f"linear VAE (PCA water-filling), M = {m}" + (
            f", {data}" if len(spectra) > 1 else ""
        )
        ax.plot(np.maximum(r, 1e-12), d, ls, color="k", lw=1.4, label=name, zorder=2)
        ax.axhline(
            sp.total_variance,
            color="0.45",
            lw=0.9,
            ls=":",
            zorder=1,
            label="SSE of the mean image (total variance, R = 0)" if i == 0 else None,
        )
    if not linear.empty:
        for key, p in linear.iterrows():
            c = palette.of(str(key))["color"]
            ax.plot(p["lin_rate"], p["lin_sse"], "o", mfc="none", mec=c, ms=7, mew=1.3)
            ax.plot([p["x"], p["lin_rate"]], [p["y"], p["lin_sse"]], ":", color=c, lw=1)
        ax.plot([], [], "o", mfc="none", mec="k", label="linear VAE at the same β (σ²_eff)")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("rate R = KL(q(z|x) || p(z)), nats per image" + (", log scale" if xlog else ""))
    ax.set_ylabel(distortion_label(sweep) + (", log scale" if ylog else ""))
    ax.set_title("Rate–distortion plane at the end of training (validation)")
    # References under the axes.
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    caption = (
        "Each point is one β (or method), at the end of training on validation images; error "
        "bars are one standard deviation over seeds, faint points the single seeds. The "
        "β-objective picks the point where the model's curve has slope −β (Alemi et al. 2018), "
        "so larger β should sit further up and to the left; a point out of that order signals "
        "an optimisation problem rather than an effect of β. Grey lines have constant R + D"
        + (
            " (constant ELBO, since for mse −ELBO = SSE + KL + a constant)"
            if _all_mse(sweep)
            else ""
        )
        + "."
    )
    if spectra:
        caption += (
            " The dashed curve is what a linear VAE (probabilistic PCA) reaches on data with "
            "this training set's covariance; a point above it does worse than a linear model at "
            "the same rate."
        )
        if not linear.empty:
            caption += " Hollow circles: the linear VAE trained at the same β."
        elif not annotate:
            caption += (
                f" With more than {MAX_ANNOTATED} groups, the points are not labelled and the "
                "linear VAE at each β is not drawn."
            )
    elif ycol == "sse":
        caption += " (No PCA spectrum in the run records, so no linear reference curve.)"
    return Rendered("rate_distortion", "Rate–distortion plane", caption, render(fig))


def _linear_points(pts: pd.DataFrame) -> pd.DataFrame:
    """The groups whose linear VAE at the same beta encodes something (rate > 0, so it has a
    place on the plane): a hollow circle each, joined to the group's point by a leader."""
    return pts[np.isfinite(pts["lin_rate"]) & (pts["lin_rate"] > 0)]


def _all_mse(sweep: SweepRecords) -> bool:
    lik = set(sweep.usable["likelihood"].dropna())
    return lik == {"mse"} and sweep.distortion == "sse"


def _limits(values: pd.Series, log: bool, floor: float) -> tuple[float, float]:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if log:
        v = v[v > 0]
        lo, hi = float(v.min()), float(v.max())
        return lo / 1.6, hi * 1.6
    lo, hi = float(v.min()), float(v.max())
    pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    return max(lo - pad, floor) if lo >= floor else lo - pad, hi + pad


def _iso_lines(
    ax: Axes,
    pts: pd.DataFrame,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    xlog: bool,
    sweep: SweepRecords,
) -> None:
    """Lines of constant R + D through the best and a few other points (slope -1)."""
    total = (pts["x"] + pts["y"]).dropna().sort_values()
    if total.empty:
        return
    levels: list[float] = []
    for c in np.quantile(total.to_numpy(), [0.0, 0.5, 1.0]):
        if all(abs(c - k) > 0.15 * abs(k) for k in levels):
            levels.append(float(c))
    x = np.geomspace(max(xlim[0], 1e-9), xlim[1], 200) if xlog else np.linspace(*xlim, 200)
    taken = point_boxes(ax, list(zip(pts["x"], pts["y"])), 7)
    taken += [t.get_window_extent() for t in ax.texts]
    for i, c in enumerate(levels):
        y = c - x
        keep = (y >= ylim[0]) & (y <= ylim[1])
        if keep.sum() < 2:
            continue
        label = "constant R + D (lowest, median and highest of the runs)" if i == 0 else None
        ax.plot(x[keep], y[keep], color="0.6", lw=0.8, ls="-", zorder=0, label=label)
        # At either end of the line, where it covers no point and no label: at its start it
        # could run past the plot's right edge or over a point of a run at low rate.
        on = np.flatnonzero(keep)
        ends = [(on[0], "left", "top"), (on[0], "right", "top")]
        ends += [(on[-1], "right", "bottom"), (on[-1], "left", "bottom")]
        place_text(
            ax,
            [{"x": x[j], "y": y[j], "ha": ha, "va": va} for j, ha, va in ends],
            taken,
            partial(ax.text, s=f" R + D = {fmt(c)} ", color="0.45", fontsize=7),
        )
