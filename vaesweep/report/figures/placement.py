"""Where text goes in a figure: legends outside the plot, labels beside their points.

Every placement is measured, not guessed: a label takes the first of its candidate places
where its box covers no marker, no label placed before it and stays inside the plot
(:func:`place_text`); a legend goes right of everything the figure draws there, the figure
widening so that no axes shrinks (:func:`legend_outside`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vaesweep.report.figures.style import DPI, MAX_LEGEND, Palette


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
        return legend_clear(ax, handles=handles, **kw)
    return legend_outside(ax, lambda ncol: ax.legend(handles=handles, **{**kw, "ncol": ncol}))


def legend_clear(ax: Any, **kw: Any) -> Any:
    """A legend inside ``ax`` that covers none of its lines, points or texts.

    Matplotlib's ``best`` place where one is free; where none is (lines across the whole plot),
    the y range grows upward, in the axis's own scale (linear, log, symlog), until the band
    above the data holds the legend in its upper right or upper left corner. ``kw`` go to
    ``ax.legend``; call it once the limits are set.
    """
    renderer = ax.figure.canvas.get_renderer()
    legend = ax.legend(**kw)
    if not _covers(ax, legend.get_window_extent(renderer)):
        return legend
    scale = ax.yaxis.get_transform()
    for _ in range(4):
        for loc in ("upper right", "upper left"):
            legend.set_loc(loc)
            if not _covers(ax, legend.get_window_extent(renderer)):
                return legend
        share = legend.get_window_extent(renderer).height / ax.get_window_extent(renderer).height
        lo, hi = scale.transform(np.array(ax.get_ylim(), dtype=float))
        top = lo + (hi - lo) / max(0.2, 1.0 - share - 0.05)
        ax.set_ylim(ax.get_ylim()[0], float(scale.inverted().transform([top])[0]))
    return legend


def _covers(ax: Any, box: Any, pad: float = 4.0) -> bool:
    """Whether the pixel ``box`` (a legend's, ``pad`` pixels wider: a marker's radius) lies on
    a line, a point or a text that ``ax`` draws inside its frame."""
    from matplotlib.path import Path as DrawnPath

    box = box.padded(pad)
    frame = ax.get_window_extent()
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        pix = line.get_transform().transform(xy) if len(xy) else xy
        pix = pix[np.isfinite(pix).all(axis=1)] if len(pix) else pix
        if any(box.contains(*p) and frame.contains(*p) for p in pix):
            return True
        drawn = line.get_linestyle() not in ("None", "", " ")
        if drawn and len(pix) > 1 and DrawnPath(pix).intersects_bbox(box, filled=False):
            return True
    for points in ax.collections:
        offsets = np.asarray(points.get_offsets(), dtype=float)
        if len(offsets) and offsets.ndim == 2:
            pix = points.get_offset_transform().transform(offsets)
            if any(box.contains(*p) and frame.contains(*p) for p in pix):
                return True
    return any(t.get_text().strip() and t.get_window_extent().overlaps(box) for t in ax.texts)


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
