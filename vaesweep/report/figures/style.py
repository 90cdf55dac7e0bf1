"""Shared look of every figure: one colour per beta, one marker per KL method, number format.

Colours follow log beta on one colour map, so the same beta has the same colour in every
figure; when all runs share one beta but differ in method (or another swept key), colours
follow that instead. Figures are rendered with matplotlib's Agg backend to PNG bytes at
:data:`DPI` and closed at once (a report over 100 runs must stay fast and small).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
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


def text_width(texts: list[str], size: float) -> float:
    """Width in pixels (at :data:`DPI`) of the widest line among ``texts`` at font ``size``."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, DPI)
    prop = FontProperties(size=size)
    lines = [line for t in texts for line in t.split("\n")]
    return max(
        (renderer.get_text_width_height_descent(s, prop, ismath=False)[0] for s in lines),
        default=0.0,
    )


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


def group_legend(
    ax: Any, palette: Palette, groups: list[str], outside: bool = False, **kw: Any
) -> Any:
    """One legend entry per group (colour and marker), in the order given; a beta colour bar
    instead when there are many groups coloured by beta. ``outside``: to the right of the plot
    (:func:`legend_outside`), where it can cover no point or line however many groups there are.
    Returns the legend (None when there is none)."""
    from matplotlib.lines import Line2D

    if palette.use_colorbar and len(groups) > MAX_LEGEND:
        palette.colorbar(ax.figure, ax)
        if len(palette.marker_of_method) <= 1:
            return None
        # Colour says beta; the marker says the method.
        handles = [
            Line2D([], [], ls="", marker=mk, color="0.3", label=m)
            for m, mk in palette.marker_of_method.items()
        ]
        kw = {"frameon": False, **kw, "title": "kl.method"}
    else:
        handles = [
            Line2D([], [], linestyle="-", markersize=5, **palette.of(g), label=palette.label[g])
            for g in groups
        ]
        if not handles:
            return None
        kw = {"frameon": False, "ncol": 1 if len(handles) <= 12 else 2, **kw}
    if not outside:
        return ax.legend(handles=handles, **kw)
    return legend_outside(ax, lambda ncol: ax.legend(handles=handles, **{**kw, "ncol": ncol}))


def legend_outside(ax: Any, make: Any, pad: float = 0.15) -> Any:
    """A legend right of everything the figure draws there (a colour bar and its label too),
    its top level with ``ax``'s; the figure widens by the room it takes, so no axes shrinks.

    ``make(ncol)`` draws the legend; columns are added until it fits the figure's height.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    h = fig.get_size_inches()[1]
    top = ax.get_position().y1 * h  # inches above the figure's bottom edge
    ncol = 1
    legend = make(ncol)
    while legend.get_window_extent(renderer).height / fig.dpi > top and ncol < 8:
        legend.remove()
        ncol += 1
        legend = make(ncol)
    legend.set_in_layout(False)  # so that measuring the axes below leaves it out
    right = max(a.get_tightbbox(renderer).x1 for a in fig.axes if a.get_visible()) / fig.dpi
    width = legend.get_window_extent(renderer).width / fig.dpi
    new_w = widen(fig, right + pad + width + 0.1)
    legend.set_loc("upper left")
    legend.set_bbox_to_anchor(((right + pad) / new_w, top / h), transform=fig.transFigure)
    return legend


def widen(fig: Figure, width: float) -> float:
    """Make the figure at least ``width`` inches wide, every axes keeping its size and its
    place from the left edge (the room is added on the right); returns the new width."""
    w, h = fig.get_size_inches()
    if width <= w:
        return float(w)
    boxes = [(a, a.get_position()) for a in fig.axes]
    fig.set_size_inches(width, h)
    for a, box in boxes:
        a.set_position((box.x0 * w / width, box.y0, box.width * w / width, box.height))
    return width


#: Where a point's label may go, in points from the point: right and above first.
LABEL_PLACES = (
    ((7, 6), "left", "bottom"),
    ((7, -6), "left", "top"),
    ((-7, 6), "right", "bottom"),
    ((-7, -6), "right", "top"),
)


def place_text(ax: Any, candidates: list[dict[str, Any]], avoid: list[Any], make: Any) -> Any:
    """The first of ``candidates`` (keyword sets for ``make``, which draws a text) whose text
    covers none of the boxes in ``avoid`` (pixels) and stays inside the plot, else the one that
    covers the fewest; the others are removed. Its box is added to ``avoid``."""
    frame = ax.get_window_extent()
    best: tuple[int, Any] | None = None
    for kw in candidates:
        text = make(**kw)
        box = text.get_window_extent()
        covered = sum(box.overlaps(b) for b in avoid)
        covered += int(box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0)
        covered += int(box.y1 > frame.y1)
        if best is None or covered < best[0]:
            if best is not None:
                best[1].remove()
            best = (covered, text)
        else:
            text.remove()
        if covered == 0:
            break
    assert best is not None
    avoid.append(best[1].get_window_extent())
    return best[1]


def point_boxes(ax: Any, xy: Sequence[tuple[float, float]], radius: float) -> list[Any]:
    """Pixel boxes of markers of ``radius`` pixels at the data points ``xy``."""
    from matplotlib.transforms import Bbox

    return [
        Bbox.from_bounds(px - radius, py - radius, 2 * radius, 2 * radius)
        for px, py in (ax.transData.transform(p) for p in xy)
    ]


def annotate_points(
    ax: Any,
    points: list[tuple[float, float, str, Any]],
    radius: float = 7,
    obstacles: Sequence[tuple[float, float]] = (),
) -> None:
    """Label points next to their markers (``radius`` pixels): of four places around each, the
    first where the label covers no other point and no label placed before it (two methods
    that ended close together printed one's name under the other's marker, a group's name lay
    on its own single seeds) and stays inside the plot, else the place that covers the fewest.
    ``obstacles``: other points (data coordinates, small markers) no label should cover."""
    markers = point_boxes(ax, [(x, y) for x, y, _, _ in points], radius)
    placed = point_boxes(ax, obstacles, 3)
    for i, (x, y, text, colour) in enumerate(points):
        others = [b for j, b in enumerate(markers) if j != i] + placed
        place_text(
            ax,
            [{"xytext": offset, "ha": ha, "va": va} for offset, ha, va in LABEL_PLACES],
            others,
            partial(
                ax.annotate,
                text,
                (x, y),
                textcoords="offset points",
                fontsize=8,
                color=colour,
                fontweight="bold",
            ),
        )
        placed.append(others[-1])


def ordered_groups(table: pd.DataFrame) -> list[str]:
    """Groups sorted by their beta axis, then label (the order of legends and columns)."""
    first = table.drop_duplicates("group")
    first = first.assign(_x=first["beta_x"].fillna(np.inf))
    return [str(g) for g in first.sort_values(["_x", "label"])["group"]]
