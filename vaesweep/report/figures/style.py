"""Shared look of every figure: one colour per beta, one marker per KL method, number format.

Colours follow log beta on one colour map, so the same beta has the same colour in every
figure; when all runs share one beta but differ in method (or another swept key), colours
follow that instead. Figures are rendered with matplotlib's Agg backend to PNG bytes at
:data:`DPI` and closed at once (a report over 100 runs must stay fast and small).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vaesweep.report.numbers import fmt, fmt_pct

DPI = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
#: The beta colour map, cut before its pale end so every colour reads on white.
BETA_CMAP = "viridis"
BETA_RANGE = (0.0, 0.88)
#: Above this many groups, figures coloured by beta show a colour bar instead of a legend.
MAX_LEGEND = 8

__all__ = ["DPI", "Palette", "Rendered", "fmt", "fmt_pct", "margins", "plt", "render"]

plt.rcParams.update(
    {
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.25,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


@dataclass
class Rendered:
    """One finished figure: file name, title, caption (plain text) and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _tick(v: float) -> str:
    """A log-axis tick as a plain number ("0.05", "20"), powers of ten far out as "1e-8"."""
    if v <= 0 or not math.isfinite(v):
        return ""
    if 1e-3 <= v < 1e5:
        return f"{v:g}"
    exp = math.floor(math.log10(v) + 1e-9)
    mant = v / 10**exp
    return f"1e{exp}" if abs(mant - 1) < 1e-6 else f"{mant:.0f}e{exp}"


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers; on short spans also label minor ticks 2, 3, 5 (x
    10^k), so an axis covering less than a decade still shows values; every minor tick where
    those would leave fewer than three numbers (an axis from 5.4 to 14 showed only "10"); and
    evenly spaced round numbers where fewer than three of 1-9 x 10^k fall inside at all (an
    axis from 225 to 256 showed no number, an MSE from 0.085 to 0.101 only "0.1")."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and math.isfinite(hi)):
        return
    span = math.log10(hi / lo)

    def inside(mantissas: tuple[int, ...]) -> int:
        decades = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
        return sum(1 for k in decades for m in mantissas if lo <= m * 10.0**k <= hi)

    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    if inside(tuple(range(1, 10))) < 3:
        # Too narrow for log ticks: over so short a span the axis is nearly linear.
        axis.set_major_locator(MaxNLocator(5))
        axis.set_minor_locator(NullLocator())
        return
    keep: tuple[int, ...] = (2, 3, 5) if span < 1.3 else ((2, 5) if span < 2.0 else ())
    if inside((1, *keep)) < 3 and span < 1.0:
        keep = tuple(range(2, 10))

    def minor(v: float, _: Any) -> str:
        if v <= 0:
            return ""
        mant = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return _tick(v) if mant in keep else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def margins(fig: Figure, left: float, right: float, bottom: float, top: float, **kw: float) -> None:
    """Subplot margins in inches from each edge (readable at any figure size)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h, **kw
    )


def render(fig: Figure) -> bytes:
    """PNG bytes of a figure (closed afterwards), log axes labelled with plain numbers."""
    for ax in fig.axes:
        if ax.get_yscale() == "log":
            plain_log_ticks(ax.yaxis)
        if ax.get_xscale() == "log":
            plain_log_ticks(ax.xaxis)
    # Fixed margins (set per figure) instead of bbox_inches="tight" or a layout engine: both
    # cost a second full draw, which is most of a report's time.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _shade(colour: Any, t: float) -> tuple[float, ...]:
    """``colour`` darkened towards black (``t`` < 0) or lightened towards white (``t`` > 0) by
    the share ``|t|``; alpha kept."""
    from matplotlib.colors import to_rgba

    r, g, b, *alpha = to_rgba(colour)
    mix = [c * (1 + t) if t < 0 else c + (1 - c) * t for c in (r, g, b)]
    return (*mix, *alpha)


class Palette:
    """Colour and marker of every group of a sweep, fixed once for all figures."""

    def __init__(self, table: pd.DataFrame) -> None:
        first = table.drop_duplicates("group").set_index("group")
        betas = sorted({b for b in first["beta"].dropna() if b > 0})
        methods = sorted(first["method"].dropna().unique().tolist())
        self.marker_of_method = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)}
        self.by = "beta" if len(betas) > 1 else ("method" if len(methods) > 1 else "group")
        self.beta_range = (betas[0], betas[-1]) if betas else (1.0, 1.0)
        self.n_groups = len(first)
        cmap = plt.get_cmap(BETA_CMAP)
        self.colour: dict[str, Any] = {}
        self.marker: dict[str, str] = {}
        if self.by == "beta":
            lo, hi = math.log10(betas[0]), math.log10(betas[-1])
            for g, row in first.iterrows():
                b = row["beta"]
                t = 0.5 if not (b > 0) or hi == lo else (math.log10(b) - lo) / (hi - lo)
                self.colour[str(g)] = cmap(BETA_RANGE[0] + t * (BETA_RANGE[1] - BETA_RANGE[0]))
        else:
            keys = methods if self.by == "method" else [str(g) for g in first.index]
            tab = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
            of = {k: tab(i % tab.N) for i, k in enumerate(keys)}
            for g, row in first.iterrows():
                self.colour[str(g)] = of[row["method"] if self.by == "method" else str(g)]
        for g, row in first.iterrows():
            self.marker[str(g)] = self.marker_of_method.get(row["method"], "o")
        self.label = {str(g): str(row["label"]) for g, row in first.iterrows()}
        # Groups that differ only in another swept key (model.latent_dim, train.lr) got one
        # colour and marker: identical lines and legend entries. They are shaded apart, from
        # darker to lighter in the order of the table.
        looks: dict[tuple[Any, str], list[str]] = {}
        for g in self.colour:
            looks.setdefault((tuple(self.colour[g]), self.marker[g]), []).append(g)
        for same in looks.values():
            for i, g in enumerate(same if len(same) > 1 else []):
                self.colour[g] = _shade(self.colour[g], -0.45 + 0.9 * i / (len(same) - 1))

    def of(self, group: str) -> dict[str, Any]:
        return {"color": self.colour.get(group, "grey"), "marker": self.marker.get(group, "o")}

    @property
    def use_colorbar(self) -> bool:
        """Many betas read better from a colour bar than from a legend of every value."""
        return self.by == "beta" and self.n_groups > MAX_LEGEND

    def colorbar(self, fig: Figure, ax: Any) -> None:
        """A log-beta colour bar with exactly the colours the groups were given."""
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import ListedColormap, LogNorm

        base = plt.get_cmap(BETA_CMAP)
        cmap = ListedColormap(base(np.linspace(*BETA_RANGE, 256)))
        sm = ScalarMappable(norm=LogNorm(*self.beta_range), cmap=cmap)
        width = fig.get_size_inches()[0]
        fig.subplots_adjust(right=min(fig.subplotpars.right, 1 - 0.8 / width))
        fig.colorbar(sm, ax=ax, label="β (configured)", pad=0.02, fraction=0.05)


def log_scale_if_spans(ax: Any, values: Any, axis: str = "y", decades: float = 1.3) -> bool:
    """Use a log axis when the positive values span more than ``decades`` decades."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or (v <= 0).any():
        return False
    if math.log10(v.max() / v.min()) < decades:
        return False
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    return True


def centre_log_range(ax: Any, factor: float = 1.6) -> None:
    """A log y axis whose data are one value (one run, or runs that agree) got matplotlib's
    decade around it, 0.1 to 1 for an MSE of 0.101, the point on the axis' edge; centre the
    value instead, ``factor`` below and above. Data that vary keep matplotlib's own range."""
    lo, hi = ax.dataLim.y0, ax.dataLim.y1
    if lo > 0 and math.isfinite(hi) and hi <= lo * 1.01:
        ax.set_ylim(lo / factor, hi * factor)


def ordered_groups(table: pd.DataFrame) -> list[str]:
    """Groups sorted by their beta axis, then label (the order of legends and columns)."""
    first = table.drop_duplicates("group")
    first = first.assign(_x=first["beta_x"].fillna(np.inf))
    return [str(g) for g in first.sort_values(["_x", "label"])["group"]]
