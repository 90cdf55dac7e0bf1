"""Image grids across beta: reconstructions, prior samples and latent traversals.

Each run writes its grids edge to edge, with rows, columns and cell size in
``summary.json["images"]`` (:mod:`vaesweep.record.images`). These figures cut those grids back
into rows and stack one row (or a few) per group: the run with the lowest seed represents its
group. Every run uses the same validation images (``val_index``) and the same prior noise
(``vaesweep.evaluation.final.SAMPLE_SEED``), so rows compare like with like.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaesweep.record import contract
from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.figures.placement import text_width
from vaesweep.report.figures.style import (
    DPI,
    Palette,
    Rendered,
    fmt,
    ordered_groups,
    plt,
    render,
)

#: Beyond this many groups the grids show an even subset (the first and last always).
MAX_GROUP_ROWS = 16
#: The grid's label column, in pixels, at least (wider when a label needs it).
LABEL_PX = 150
#: Font size of the row labels, points.
LABEL_SIZE = 8


#: The largest grid PNG the report reads: Pillow's own limit for a decompression bomb.
MAX_GRID_PIXELS = 178_956_970


def _read_png(path: Path) -> np.ndarray | None:
    """RGB uint8 array of a PNG, or None when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            # A grid larger than any vaesweep writes (a planted or damaged file whose pixels
            # compress to nothing) is left out like an unreadable one, whatever this process
            # has set Pillow's own bomb limit to.
            if im.width * im.height > MAX_GRID_PIXELS:
                return None
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _rows(grid: np.ndarray, layout: dict[str, Any]) -> list[np.ndarray] | None:
    """Cut a grid into its rows (each H x cols*W x 3) using the layout from summary.json."""
    try:
        n, cell_h = int(layout["rows"]), int(layout["cell"][0])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if grid.shape[0] != n * cell_h:
        return None
    rows = [grid[i * cell_h : (i + 1) * cell_h] for i in range(n)]
    # The writer puts cells edge to edge; a thin white gap keeps neighbouring images apart.
    try:
        cell_w = int(layout["cell"][1])
    except (KeyError, TypeError, ValueError, IndexError):
        return rows
    if cell_w <= 0 or grid.shape[1] % cell_w:
        return rows
    gap = np.full((cell_h, 2, grid.shape[2]), 255, dtype=grid.dtype)
    return [
        np.concatenate(
            [x for j in range(0, r.shape[1], cell_w) for x in (r[:, j : j + cell_w], gap)][:-1],
            axis=1,
        )
        for r in rows
    ]


def representatives(sweep: SweepRecords, limit: int = MAX_GROUP_ROWS) -> list[tuple[str, str]]:
    """(group, run key) of the lowest-seed usable run per group, at most ``limit`` groups."""
    ok = sweep.usable
    out = []
    for g in ordered_groups(sweep.table):
        rows = ok[ok["group"] == g]
        if rows.empty:
            continue
        seeds = pd.to_numeric(rows["seed"], errors="coerce").fillna(np.inf)
        out.append((g, str(rows.index[int(np.argmin(seeds.to_numpy()))])))
    if len(out) > limit:
        keep = sorted(set(np.linspace(0, len(out) - 1, limit).round().astype(int)))
        out = [out[i] for i in keep]
    return out


def _subset_note(sweep: SweepRecords, reps: list[tuple[str, str]]) -> str:
    """The caption's note when a grid shows an even subset of the groups (the prior samples and
    the traversals left groups out without saying so)."""
    n = sweep.usable["group"].nunique()
    if len(reps) >= n:
        return ""
    return f" Showing {len(reps)} of {n} groups, evenly spread over them."


def _grid_figure(
    rows: list[tuple[str, np.ndarray]],
    header: str | None = None,
    col_labels: list[str] | None = None,
) -> bytes:
    """Stack labelled image rows into one figure at 1:1 pixels (plus the label column)."""
    width = max(r.shape[1] for _, r in rows)
    padded = []
    for _, r in rows:
        if r.shape[1] < width:
            r = np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        padded.append(r)
    # Small images (8x8 digits at 48 px cells) are enlarged by an integer factor, nearest
    # neighbour, so the page shows them at a readable size without resampling blur.
    scale = max(1, math.ceil(560 / width)) if len(rows) <= 8 else 1
    if scale > 1:
        padded = [r.repeat(scale, 0).repeat(scale, 1) for r in padded]
    gap = 4
    sep = np.full((gap, width * scale, 3), 255, dtype=np.uint8)
    stacked = np.concatenate([x for r in padded for x in (r, sep)][:-1], axis=0)
    h, w = stacked.shape[:2]
    top = 46 if (header and col_labels) else (28 if (header or col_labels) else 6)
    label_px = _label_column([label for label, _ in rows])
    fig = plt.figure(figsize=((w + label_px + 10) / DPI, (h + top + 6) / DPI), dpi=DPI)
    ax = fig.add_axes(
        (
            label_px / (w + label_px + 10),
            6 / (h + top + 6),
            w / (w + label_px + 10),
            h / (h + top + 6),
        )
    )
    ax.imshow(stacked, interpolation="nearest")
    centres, y = [], 0
    for r in padded:
        centres.append(y + r.shape[0] / 2)
        y += r.shape[0] + gap
    ax.set_yticks(centres, [label for label, _ in rows], fontsize=LABEL_SIZE)
    if col_labels:
        n = len(col_labels)
        ax.set_xticks([(i + 0.5) * w / n for i in range(n)], col_labels, fontsize=7)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if header:
        ax.set_title(header, fontsize=9, pad=16 if col_labels else 4)
    return render(fig)


def _label_column(labels: list[str]) -> int:
    """Pixels the row labels need left of the images (at least :data:`LABEL_PX`): a fixed
    150 px cut "β=0.1, lr=0.001  z13 (0.88 nats)" to "lr=0.001  z13 (0.88 nats)"."""
    return max(LABEL_PX, math.ceil(text_width(labels, LABEL_SIZE)) + 12)  # pad and margin


def _grid_rows(
    sweep: SweepRecords, key: str, name: str, file: str
) -> tuple[dict[str, Any], list[np.ndarray] | None]:
    """A run's grid ``name`` (``summary.json["images"][name]``, written to ``file``): its
    layout and its rows, None when the PNG is missing or does not match the layout."""
    run = sweep.runs[key]
    layout = ((run.summary or {}).get("images") or {}).get(name) or {}
    grid = _read_png(run.path / file)
    return layout, (_rows(grid, layout) if grid is not None else None)


def fig_reconstructions(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    reps = representatives(sweep)
    rows: list[tuple[str, np.ndarray]] = []
    index: list[int] | None = None
    differ: list[str] = []
    for g, key in reps:
        layout, cut = _grid_rows(sweep, key, "reconstructions", contract.RECONSTRUCTIONS_FILE)
        if not cut or len(cut) < 2:
            continue
        if not rows:
            rows.append(("original", cut[0]))
            index = layout.get("val_index")
        elif layout.get("val_index") != index or cut[0].shape != rows[0][1].shape:
            differ.append(palette.label[g])
        rows.append((palette.label[g], cut[1]))
    if len(rows) < 2:
        return None
    png = _grid_figure(rows)
    caption = (
        "Top row: validation images; below, each β's reconstruction of the same images (decoder "
        "mean at the encoder mean, one seed per β). A row that looks like the same blurred "
        "digit or picture everywhere is the mean image: the decoder treated the detail of each "
        "image as noise, which is what a large σ²_eff (large β) tells it to do."
    )
    if differ:
        caption += " Rows drawn from different validation images: " + ", ".join(differ) + "."
    caption += _subset_note(sweep, reps)
    return Rendered("reconstructions", "Reconstructions across β", caption, png)


def fig_samples(sweep: SweepRecords, palette: Palette, per_row: int = 8) -> Rendered | None:
    rows: list[tuple[str, np.ndarray]] = []
    reps = representatives(sweep)
    for g, key in reps:
        layout, cut = _grid_rows(sweep, key, "samples", contract.SAMPLES_FILE)
        if not cut:
            continue
        row = np.concatenate(cut[: max(1, -(-per_row // max(1, int(layout.get("cols", 8)))))], 1)
        rows.append((palette.label[g], row))
    if not rows:
        return None
    caption = (
        "Decoded samples z ~ N(0, I) from the prior, the same noise z in every row. Read with "
        "the marginal KL (information figure): where the aggregate posterior leaves holes in "
        "the prior, samples fall between the images the decoder has learnt; where the code "
        "carries almost nothing, every sample is close to the mean image."
    ) + _subset_note(sweep, reps)
    return Rendered("samples", "Prior samples across β", caption, _grid_figure(rows))


def fig_traversals(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    reps = representatives(sweep, limit=12)
    per = 3 if len(reps) <= 4 else (2 if len(reps) <= 8 else 1)
    rows: list[tuple[str, np.ndarray]] = []
    values: list[float] | None = None
    for g, key in reps:
        layout, cut = _grid_rows(sweep, key, "traversals", contract.TRAVERSALS_FILE)
        if not cut:
            continue
        dims = layout.get("dims") or list(range(len(cut)))
        values = values or layout.get("values")
        kl = sweep.kl_dims.get(key, np.array([]))
        carries = factor_of_latent(sweep, key)
        for i, (row, d) in enumerate(zip(cut, dims)):
            if i >= per:
                break
            nats = f" ({fmt(kl[d], 2)} nats)" if d < kl.size else ""
            factor = f" ~ {carries[d]}" if d in carries else ""
            rows.append((f"{palette.label[g]}  z{d}{factor}{nats}", row))
    if not rows:
        return None
    labels = [f"{v:+.2g}" for v in values] if values else None
    png = _grid_figure(rows, header="value of the traversed dimension", col_labels=labels)
    caption = (
        f"For each β, the {per} most informative dimension(s) (largest KL) "
        "are swept from −3 to +3 around one validation image's code, the others held fixed. A "
        "dimension with a KL near zero decodes to the same image all along its row: the "
        "decoder ignores it."
    )
    caption += _subset_note(sweep, reps)
    if any("~" in label for label, _ in rows):
        caption += (
            " On a factor dataset, 'z3 ~ posX' names the factor that latent shares the most "
            "information with (disentanglement.json's MIG details)."
        )
    return Rendered("traversals", "Latent traversals", caption, png)


def factor_of_latent(sweep: SweepRecords, key: str) -> dict[int, str]:
    """Latent -> the factor(s) it carries most of, from summary.json's disentanglement entry."""
    run = sweep.runs.get(key)
    entry = ((run.summary or {}).get("disentanglement") or {}) if run else {}
    top, names = entry.get("top_latent"), entry.get("factors")
    if not isinstance(top, list) or not isinstance(names, list) or len(top) != len(names):
        return {}
    out: dict[int, list[str]] = {}
    for latent, name in zip(top, names):
        if isinstance(latent, int):
            out.setdefault(latent, []).append(str(name))
    return {j: "+".join(v) for j, v in out.items()}
