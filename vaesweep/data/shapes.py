"""``data=shapes``: small coloured shapes with five known factors; trains in seconds on a CPU.

A factor dataset for the demo and the tests, in the spirit of dSprites but small enough that a
β-sweep and its disentanglement metrics finish in minutes on two cores. Every combination of the
factors appears once (1,296 images of 16 x 16 RGB by default):

==========  ====  ========================================================
factor      size  values
==========  ====  ========================================================
shape       3     square, disk, triangle (pointing up)
size        3     side / diameter 5, 7, 9 px (at 16 px; scaled with the canvas)
colour      4     red, green, blue, yellow (pure channel values, so pixels stay binary)
posX, posY  6     centre 5.5..10.5 px (pixel centres at 16 px), left to right, top to bottom
==========  ====  ========================================================

Shapes are white-on-black masks (4 x 4 supersampled, covered when at least half of a pixel is
inside), then coloured; images are ordered with the last factor fastest. ``data.image_size=S``
scales the geometry by S/16. ``data.limit=N`` keeps a seeded uniform sample of N combinations.
"""

from __future__ import annotations

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.dsprites import chosen_combinations
from vaesweep.data.factors import FactorGrid, values_of
from vaesweep.data.imageset import ImageSet, RawDataset

NAMES = ("shape", "size", "colour", "posX", "posY")
SIZES = (3, 3, 4, 6, 6)
SHAPE_NAMES = ("square", "disk", "triangle")
COLOUR_NAMES = ("red", "green", "blue", "yellow")
COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.uint8) * 255
NATIVE_SIZE = 16
#: Side (diameter) of each size class and the centre of each position, in pixels at 16 px.
EXTENTS = (5.0, 7.0, 9.0)
CENTRES = (5.5, 6.5, 7.5, 8.5, 9.5, 10.5)
VALUES = values_of(range(3), EXTENTS, range(4), CENTRES, CENTRES)
_SUB = 4  # sub-pixels per pixel side
_CHUNK = 256  # images rasterised at once


def shapes_grid(render: ShapesRenderer | None = None) -> FactorGrid:
    return FactorGrid(NAMES, SIZES, VALUES, render=render)


def _inside(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Coverage of sub-pixels at offsets (dx, dy) (down is +dy) from each shape's centre."""
    square = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    disk = dx**2 + dy**2 <= half**2
    # Upward triangle with its base and apex on the bounding square: |dx| <= half * (dy + half) / (2 half).
    triangle = (np.abs(dy) <= half) & (np.abs(dx) <= (dy + half) / 2)
    return np.where(shape == 0, square, np.where(shape == 1, disk, triangle))


class ShapesRenderer:
    """classes (n, 5) -> uint8 images (n, 3, size, size)."""

    def __init__(self, size: int = NATIVE_SIZE) -> None:
        self.size = size
        self.zoom = size / NATIVE_SIZE
        grid = (np.arange(size * _SUB) + 0.5) / _SUB  # sub-pixel centres in pixels
        self.xs = grid[None, None, :]
        self.ys = grid[None, :, None]

    def __call__(self, classes: np.ndarray) -> torch.Tensor:
        classes = np.asarray(classes, dtype=np.int64)
        out = np.zeros((len(classes), 3, self.size, self.size), dtype=np.uint8)
        for start in range(0, len(classes), _CHUNK):
            c = classes[start : start + _CHUNK]
            shape = c[:, 0, None, None]
            half = (np.asarray(EXTENTS)[c[:, 1]] * self.zoom / 2)[:, None, None]
            cx = (np.asarray(CENTRES)[c[:, 3]] * self.zoom)[:, None, None]
            cy = (np.asarray(CENTRES)[c[:, 4]] * self.zoom)[:, None, None]
            cover = _inside(shape, self.xs - cx, self.ys - cy, half)
            n, s = len(c), self.size
            mask = cover.reshape(n, s, _SUB, s, _SUB).mean(axis=(2, 4)) >= 0.5
            out[start : start + n] = mask[:, None] * COLOURS[c[:, 2]][:, :, None, None]
        return torch.from_numpy(out)


def load_shapes(cfg: DataConfig) -> RawDataset:
    size = cfg.image_size or NATIVE_SIZE
    renderer = ShapesRenderer(size)
    grid = shapes_grid(renderer)
    classes = grid.classes_of(chosen_combinations(grid.total, cfg.limit, cfg.split_seed))
    factors = torch.from_numpy(classes)
    train = ImageSet(renderer(classes), labels=factors[:, 0].clone(), factors=factors)
    notes = [
        f"shapes rendered at {size}x{size}: {len(classes)} of {grid.total} combinations of "
        f"{', '.join(NAMES)}"
    ]
    return RawDataset(train, test=None, source="procedural shapes", notes=notes, grid=grid)
