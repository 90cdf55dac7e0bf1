"""The original dSprites file, ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``, when present.

Layout (github.com/deepmind/dsprites-dataset; read the same way by disentanglement_lib):
``imgs`` uint8 (N, 64, 64) in {0, 1} (other copies' bool or 0/1 arrays are read too);
``latents_values`` float64 (N, 6); ``latents_classes`` int64 (N, 6), columns (color, shape,
scale, orientation, posX, posY); and ``metadata``, a pickled dict. The file is read with
``allow_pickle=False``: ``metadata`` is never touched (a user's file is never unpickled); the
grid's sizes come from the classes themselves. A copy a browser saved under a numbered name
(``..._64x64 (1).npz`` or ``..._64x64(1).npz``) is found too, and each array's declared size is
checked before it is read (:mod:`vaesweep.data.npz_check`).

The complete file holds every combination in the grid order (posY fastest), so the images for
any factors are a lookup, which is what the BetaVAE and FactorVAE scores need. A file holding
only some combinations still trains and gets the metrics that sample existing images (MIG,
SAP, DCI). Loading decompresses 3 GB into memory (about 10-20 s).
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.dsprites import NAMES, chosen_combinations
from vaesweep.data.factors import FactorGrid
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.data.npz_check import check_npz, readable_size
from vaesweep.errors import UserError

FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
KEYS = ("imgs", "latents_values", "latents_classes")
#: A file may lack combinations (a subset), but not by more than this factor: a grid far larger
#: than its images is a damaged latents_classes (an index of 2**40 would allocate terabytes).
GRID_SLACK = 64


#: The name a browser gives a second download of the file: "name (1).npz" or "name(1).npz".
RENAMED = re.compile(re.escape(FILE_NAME.removesuffix(".npz")) + r" ?\((\d+)\)\.npz")


def _renamed(folder: Path) -> list[Path]:
    """Numbered copies of the file in ``folder``, lowest number first."""
    try:
        names = sorted(
            (int(m.group(1)), name)
            for name in os.listdir(folder)
            if (m := RENAMED.fullmatch(name)) is not None
        )
    except OSError:  # no such folder, or not one
        return []
    return [folder / name for _, name in names if (folder / name).is_file()]


def find_npz(root: str) -> Path | None:
    """The original file in ``root`` or ``root/dsprites``; else the numbered copy a browser
    saved, lowest number first (several copies: one is chosen the same way every time, and the
    run's notes name it)."""
    base = Path(root).expanduser()
    folders = (base, base / "dsprites")
    for folder in folders:
        if (folder / FILE_NAME).is_file():
            return folder / FILE_NAME
    for folder in folders:
        copies = _renamed(folder)
        if copies:
            return copies[0]
    return None


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    expected = f"an npz with {', '.join(KEYS)} (the original dSprites file)"
    try:
        check_npz(path, KEYS)  # before np.load allocates what a header declares
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise UserError(f"{path} lacks {', '.join(missing)}; expected {expected}")
            imgs, values, classes = (npz[k] for k in KEYS)
    # A damaged member: BadZipFile (CRC), EOFError (truncated), zlib.error (deflate stream).
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path} ({e}); expected {expected}") from None
    except MemoryError:
        size = readable_size(path.stat().st_size)
        raise UserError(
            f"not enough memory to load {path} ({size} compressed); use a larger machine"
        ) from None
    n = len(imgs)
    if imgs.ndim != 3 or values.shape != (n, 6) or classes.shape != (n, 6) or n == 0:
        raise UserError(
            f"{path}: imgs {imgs.shape}, latents_values {values.shape}, latents_classes "
            f"{classes.shape}; expected (N, H, W), (N, 6) and (N, 6)"
        )
    if classes.min() < 0:
        raise UserError(f"{path}: latents_classes has negative entries")
    sizes = classes[:, 1:].max(axis=0).astype(np.float64) + 1
    if float(np.prod(sizes)) > GRID_SLACK * n:
        shape = "x".join(f"{int(s):,}" for s in sizes)
        raise UserError(
            f"{path}: latents_classes spans a grid of {shape} combinations for {n:,} images; "
            f"expected at most {GRID_SLACK} per image (the original's 3x6x40x32x32 grid holds "
            "one image per combination)"
        )
    return _binary_uint8(path, imgs), values, classes.astype(np.int64)


def _binary_uint8(path: Path, imgs: np.ndarray) -> np.ndarray:
    """``imgs`` as uint8: the original stores uint8 {0, 1}, other copies bool, wider integers or
    floats. Integers in 0..255 are kept as they are; floats only when every pixel is 0 or 1 (a
    float image has no agreed 8-bit scale, and dSprites is binary)."""
    if imgs.dtype == np.uint8:
        return imgs
    if imgs.dtype == np.bool_:
        return imgs.view(np.uint8)  # no copy of up to 3 GB
    if np.issubdtype(imgs.dtype, np.integer):
        low, high = int(imgs.min()), int(imgs.max())
        if low >= 0 and high <= 255:
            return imgs.astype(np.uint8)
        found = f"values {low}..{high}"
    elif np.issubdtype(imgs.dtype, np.floating):
        # In chunks: a whole-array test would allocate two more 3 GB masks.
        if all(((c == 0) | (c == 1)).all() for c in np.array_split(imgs, 64)):
            return imgs.astype(np.uint8)
        found = "values other than 0 and 1"
    else:
        found = "no pixel values"
    raise UserError(
        f"{path}: imgs is {imgs.dtype} with {found}; expected binary images "
        "(uint8 or bool 0/1, as in the original dSprites file)"
    )


def _grid(values: np.ndarray, classes: np.ndarray) -> tuple[FactorGrid, np.ndarray]:
    """The factor grid (colour dropped) and each row's flat index in it."""
    sizes = tuple(int(s) for s in classes[:, 1:].max(axis=0) + 1)
    columns = []
    for k in range(1, 6):
        col = np.full(sizes[k - 1], np.nan)
        col[classes[:, k]] = values[:, k]
        # A class that no row uses keeps its grid position; its value is unknown.
        columns.append(tuple(float(x) for x in col))
    grid = FactorGrid(NAMES, sizes, tuple(columns))
    return grid, grid.flat_index(classes[:, 1:])


def load_npz(path: Path, cfg: DataConfig) -> RawDataset:
    imgs, values, classes = _read(path)
    grid, flat = _grid(values, classes)
    row_of = np.full(grid.total, -1, dtype=np.int64)
    row_of[flat] = np.arange(len(flat))
    present = np.flatnonzero(row_of >= 0)
    images = torch.from_numpy(imgs).unsqueeze(1)
    if int(imgs.max()) <= 1:
        images = images * 255  # the file stores {0, 1}; vaesweep's images are 0..255
    if len(present) == grid.total:

        def render(factors: np.ndarray) -> torch.Tensor:
            return images[torch.from_numpy(row_of[grid.flat_index(factors)])]

        grid = grid.with_render(render)
    else:
        grid = FactorGrid(grid.names, grid.sizes, grid.values, present=present)
    # data.limit: a seeded uniform sample of the combinations present, as for the generator.
    keep = present[chosen_combinations(len(present), cfg.limit, cfg.split_seed)]
    rows = row_of[keep]
    factors = torch.from_numpy(grid.classes_of(keep))
    # The complete file in grid order needs no copy of its 3 GB: the lookup shares it.
    same = len(rows) == len(images) and bool((rows == np.arange(len(rows))).all())
    kept = images if same else images[torch.from_numpy(rows)]
    train = ImageSet(kept, labels=factors[:, 0].clone(), factors=factors)
    notes = [f"dSprites from {path}: {len(keep)} of {len(flat)} images, grid {grid.sizes}"]
    if not grid.complete:
        notes.append(
            f"{path} holds {len(present)} of the {grid.total} combinations: the BetaVAE and "
            "FactorVAE scores, which render chosen combinations, are skipped"
        )
    return RawDataset(train, test=None, source=str(path), notes=notes, grid=grid, binary=True)
