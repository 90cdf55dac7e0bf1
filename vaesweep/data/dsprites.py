"""dSprites (Matthey, Higgins, Hassabis & Lerchner 2017), generated procedurally: no download.

737,280 binary images, one for every combination of five factors (the original's sixth,
colour, has one value and is dropped, as disentanglement_lib does):

=============  =====  =====================================================
factor         size   values
=============  =====  =====================================================
shape          3      square, ellipse, heart (stored as 1, 2, 3)
scale          6      linspace(0.5, 1, 6)
orientation    40     linspace(0, 2π, 40): 0 and 2π are the same image
posX, posY     32     linspace(0, 1, 32): left to right, top to bottom
=============  =====  =====================================================

Images are ordered with posY fastest, as in the original file. The rendering is ours (the
original's code is not published), so pixels are not identical to the original; the geometry is
in :mod:`vaesweep.data.sprites`. At 64 px the sprite extent at scale 1 is 19 px and the centres
span 16..47 px in steps of one pixel; at ``data.image_size=S`` everything scales by S/64 (S must
be a multiple of 8, at least 16). The square looks the same every 90° and the ellipse every
180°, so their orientation is identifiable only modulo those angles; this caps what any metric
can score on it.

Where the original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` is in ``data.root`` (or
``data.root/dsprites``) it is used instead; see :mod:`vaesweep.data.dsprites_npz`.

Memory: the full grid is 737,280 x S² bytes (3.0 GB at 64 px, 0.75 GB at 32 px). ``data.limit=N``
keeps a seeded uniform sample of N combinations (seed ``data.split_seed``), not the first N (which
would all be small squares), and only those are rendered. Rendering is a memory copy of
precomputed stamps (seconds for the full grid), so nothing is cached on disk.
"""

from __future__ import annotations

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.factors import FactorGrid, values_of
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.data.sprites import SHAPES, draw_stamps, paste, stamp_half, supersampling
from vaesweep.errors import UserError

NAMES = ("shape", "scale", "orientation", "posX", "posY")
SIZES = (3, 6, 40, 32, 32)
VALUES = values_of(
    [1.0, 2.0, 3.0],
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2.0 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
NATIVE_SIZE = 64
MIN_SIZE = 16


def dsprites_grid(render: DSpritesRenderer | None = None) -> FactorGrid:
    return FactorGrid(NAMES, SIZES, VALUES, render=render)


class DSpritesRenderer:
    """classes (n, 5) -> uint8 images (n, 1, size, size) in {0, 255}; stamps drawn once."""

    def __init__(self, size: int = NATIVE_SIZE) -> None:
        self.size = size
        f = supersampling(size)
        self.half = stamp_half(size)
        # Sub-pixel centre of position i: size/4 + i * size/64 pixels (16 + i at 64 px).
        centre = (size * f) // 4 + np.arange(SIZES[3]) * (size * f // 64)
        self.pixel = centre // f - self.half  # top-left corner of the stamp
        phases, self.phase_index = np.unique(centre % f, return_inverse=True)
        self.n_phases = len(phases)
        shape, scale, orient = np.meshgrid(*(np.arange(s) for s in SIZES[:3]), indexing="ij")
        stamps = draw_stamps(
            shape.ravel(),
            np.asarray(VALUES[1])[scale.ravel()],
            np.asarray(VALUES[2])[orient.ravel()],
            phases,
            size,
        )
        w = stamps.shape[-1]
        self.stamps = stamps.reshape(-1, w, w).astype(np.uint8) * np.uint8(255)

    def __call__(self, classes: np.ndarray) -> torch.Tensor:
        classes = np.asarray(classes, dtype=np.int64)
        sprite = (classes[:, 0] * SIZES[1] + classes[:, 1]) * SIZES[2] + classes[:, 2]
        px, py = classes[:, 3], classes[:, 4]
        p = self.n_phases
        stamp_id = (sprite * p + self.phase_index[py]) * p + self.phase_index[px]
        images = paste(self.stamps, stamp_id, self.pixel[py], self.pixel[px], self.size)
        return torch.from_numpy(images).unsqueeze(1)


def chosen_combinations(total: int, limit: int | None, seed: int) -> np.ndarray:
    """Which of ``total`` combinations to load: all, or a sorted seeded sample of ``limit``."""
    if limit is None or limit >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=limit, replace=False))


def load_dsprites(cfg: DataConfig) -> RawDataset:
    from vaesweep.data.dsprites_npz import find_npz, load_npz

    path = find_npz(cfg.root)
    if path is not None:
        return load_npz(path, cfg)
    size = cfg.image_size or NATIVE_SIZE
    if size % 8 or size < MIN_SIZE:
        # At 8 px the smallest sprites are about a pixel wide: 13% of the images come out blank
        # and only about 1,000 of the 737,280 differ, so the factors cannot be learned.
        raise UserError(
            f"data.image_size={size}: data=dsprites is rendered at multiples of 8 pixels "
            f"from {MIN_SIZE} up (e.g. 32 or 64)"
        )
    renderer = DSpritesRenderer(size)
    grid = dsprites_grid(renderer)
    flat = chosen_combinations(grid.total, cfg.limit, cfg.split_seed)
    classes = grid.classes_of(flat)
    factors = torch.from_numpy(classes)
    train = ImageSet(renderer(classes), labels=factors[:, 0].clone(), factors=factors)
    notes = [
        f"dSprites rendered procedurally at {size}x{size}: {len(flat)} of {grid.total} "
        f"combinations of {', '.join(NAMES)} ({', '.join(SHAPES)})"
    ]
    return RawDataset(train, test=None, source="procedural dSprites", notes=notes, grid=grid)
