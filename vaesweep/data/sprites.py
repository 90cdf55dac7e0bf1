"""A vectorised rasteriser for the dSprites shapes: square, ellipse and heart, anti-aliased.

Each sprite is tested for coverage on an ``f`` x ``f`` sub-pixel grid and an output pixel is
white when at least half of its sub-pixels are inside (binary images, as in dSprites). Moving a
sprite by whole pixels does not change its pixels, so only one *stamp* is drawn per (shape,
scale, orientation, sub-pixel phase); an image is its stamp copied into a blank canvas. That
makes rendering the 737,280 dSprites images a memory copy rather than 737,280 rasterisations.

Geometry, in units of the sprite extent ``E = scale * EXTENT * size``: the square has side E;
the ellipse has axes E and E/2; the heart is the curve (u² + v² − 1)³ = u² v³ scaled to width E.
Each is rotated counter-clockwise (as seen on screen) about its centroid.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("square", "ellipse", "heart")
#: The sprite extent at scale 1, as a fraction of the canvas (19.2 px of 64).
EXTENT = 0.3
#: The farthest point of any shape from its centroid, in units of E (the square's corner).
MAX_RADIUS = 0.5 * np.sqrt(2.0)
_HEART_WIDTH = 2.278  # width of the implicit heart curve in its own units
_HEART_CENTROID_V = 0.2935  # its centroid sits this far above the origin of the curve
_CHUNK = 1 << 22  # sub-pixel tests per block, bounding the temporary memory


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Coverage test in units of E, centroid at the origin, v pointing up."""
    if shape == 0:
        return (np.abs(u) <= 0.5) & (np.abs(v) <= 0.5)
    if shape == 1:
        return (u / 0.5) ** 2 + (v / 0.25) ** 2 <= 1.0
    hu, hv = u * _HEART_WIDTH, v * _HEART_WIDTH + _HEART_CENTROID_V
    return (hu**2 + hv**2 - 1.0) ** 3 - hu**2 * hv**3 <= 0.0


def supersampling(size: int) -> int:
    """Sub-pixels per pixel side that put every dSprites position on the sub-pixel grid."""
    if size % 8:
        raise ValueError(f"dSprites is rendered at multiples of 8 pixels, not {size}")
    return max(4, 64 // int(np.gcd(size, 64)))


def stamp_half(size: int) -> int:
    """Half the side of a stamp, in pixels: it holds the largest sprite in any orientation."""
    return int(np.ceil(MAX_RADIUS * EXTENT * size)) + 1


def draw_stamps(
    shapes: np.ndarray,
    scales: np.ndarray,
    angles: np.ndarray,
    phases: np.ndarray,
    size: int,
) -> np.ndarray:
    """Binary stamps (M, P, P, W, W) bool for M sprites at P x P sub-pixel phases.

    ``shapes`` (M,) int in 0..2, ``scales`` (M,) in canvas fractions of ``EXTENT``, ``angles``
    (M,) radians; ``phases`` (P,) int in 0..f-1: the sprite centre lies ``phase / f`` pixels
    right of (below) the left (top) edge of the stamp's central pixel.
    """
    f = supersampling(size)
    half = stamp_half(size)
    w = 2 * half + 1
    # Sub-pixel j of stamp column c, at phase p, samples the point c - half + (j + 0.5 - p) / f
    # from the sprite centre: every phase samples one fine grid, g = c * f + j - p. So each
    # sprite is tested once on that grid (one phase's worth of points plus the largest phase,
    # instead of P x P times as many), and each phase's stamp counts its own f x f blocks of
    # it. The offsets are exact binary fractions (f is a power of two), so every sample point,
    # and so every pixel, is the one a test per phase gives.
    lo = int(phases.max())
    n = w * f + lo
    fine = ((np.arange(n) - lo + 0.5) / f - half).astype(np.float32)  # (n,) offsets in pixels
    out = np.zeros((len(shapes), len(phases), len(phases), w, w), dtype=bool)
    step = max(1, _CHUNK // (n * n))
    for start in range(0, len(shapes), step):
        sl = slice(start, start + step)
        extent = (scales[sl] * EXTENT * size).astype(np.float32)[:, None, None]
        theta = angles[sl].astype(np.float32)[:, None, None]
        # dx varies along the fine columns, dy along the fine rows; v points up.
        dx = fine[None, None, :] / extent
        dy = -fine[None, :, None] / extent
        cos, sin = np.cos(theta), np.sin(theta)
        u = cos * dx + sin * dy  # rotate the sample point by -theta
        v = -sin * dx + cos * dy
        cover = np.zeros(u.shape, dtype=bool)  # (M, n rows, n columns)
        for s in range(len(SHAPES)):
            pick = shapes[sl] == s
            if pick.any():
                cover[pick] = _inside(s, u[pick], v[pick])
        m = cover.shape[0]
        for i, px in enumerate(phases):
            # Covered sub-pixels per (fine row, stamp column) at this column phase.
            cols = (
                cover[:, :, lo - px : lo - px + w * f].reshape(m, n, w, f).sum(-1, dtype=np.int32)
            )
            for k, py in enumerate(phases):
                counts = cols[:, lo - py : lo - py + w * f].reshape(m, w, f, w).sum(2)
                # White when at least half of the pixel's f x f sub-pixels are inside.
                out[sl, k, i] = 2 * counts >= f * f
    return out


def paste(
    stamps: np.ndarray,
    stamp_id: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
) -> np.ndarray:
    """Canvases (n, size, size) uint8: stamp ``stamp_id[i]`` (of uint8 (S, W, W)) with its
    top-left corner at pixel (``rows[i]``, ``cols[i]``); images sharing a corner are pasted at once.

    A corner may lie off the canvas: the stamp's one-pixel safety margin around the largest
    sprite overhangs the edge for the outermost positions at small sizes (8, 16, 24 px), so
    the part of the stamp outside the canvas (blank, as every sprite fits the canvas) is cut.
    """
    n, w = len(stamp_id), stamps.shape[-1]
    out = np.zeros((n, size, size), dtype=np.uint8)
    corner = rows.astype(np.int64) * (size + w) + cols  # unique for corners in -w..size
    order = np.argsort(corner, kind="stable")
    bounds = np.flatnonzero(np.diff(corner[order])) + 1
    for group in np.split(order, bounds):
        r, c = int(rows[group[0]]), int(cols[group[0]])
        r0, r1, c0, c1 = max(r, 0), min(r + w, size), max(c, 0), min(c + w, size)
        out[group, r0:r1, c0:c1] = stamps[stamp_id[group], r0 - r : r1 - r, c0 - c : c1 - c]
    return out
