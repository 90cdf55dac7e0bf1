"""``data=photos``: 900 colour crops of the sample photos that ship with scikit-learn and matplotlib.

A small folder of colour images at 64 px, the case vaesweep was built for (a convolutional
VAE on a few hundred paintings), with no download: 300 random square crops from each of
scikit-learn's ``china.jpg`` and ``flower.jpg`` (640x427) and matplotlib's ``grace_hopper.jpg``
(512x600). A crop's side is drawn uniformly from [S, 2.5 S] pixels for the output size S
(``data.image_size``, 64 by default: crops of 64-160 px), clamped to the photo, at a uniform
position; it is resized to S x S (bicubic, antialiased). Labels are the photo (0, 1, 2).

The crops are drawn from a fixed seed, so every machine builds the same images, and they are
cached like a decoded folder (:mod:`vaesweep.data.image_files`) on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaesweep.config import DataConfig
from vaesweep.data.image_files import (
    CACHE_SUFFIX,
    Decoded,
    cache_root,
    read_cache,
    write_cache,
)
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError

N_PER_PHOTO = 300
DEFAULT_SIZE = 64
#: Crop sides are drawn from [S, MAX_ZOOM * S] for the output size S.
MAX_ZOOM = 2.5
SEED = 20260524
VERSION = 1


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"data=photos needs {package}: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def photo_files() -> list[Path]:
    """The three source photos, in label order."""
    files = [
        _package_file("sklearn", "datasets", "images", "china.jpg"),
        _package_file("sklearn", "datasets", "images", "flower.jpg"),
        _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    ]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"data=photos: sample photo(s) missing: {', '.join(missing)}")
    return files


def make_crops(
    files: list[Path], size: int, mode: str, n_per_photo: int = N_PER_PHOTO
) -> np.ndarray:
    """uint8 (len(files) * n_per_photo, C, size, size): seeded random square crops, resized."""
    rng = np.random.default_rng(SEED)
    out = []
    for path in files:
        with Image.open(path) as im:
            photo = im.convert(mode)
        w, h = photo.size
        longest = min(w, h, round(MAX_ZOOM * size))
        shortest = min(size, longest)
        sides = rng.integers(shortest, longest + 1, size=n_per_photo)
        for side in sides:
            left = int(rng.integers(0, w - side + 1))
            top = int(rng.integers(0, h - side + 1))
            box = (left, top, left + int(side), top + int(side))
            crop = photo.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=None)
            arr = np.asarray(crop)
            out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return np.stack(out)


def load_photos(cfg: DataConfig) -> RawDataset:
    files = photo_files()
    size = cfg.image_size or DEFAULT_SIZE
    mode = "L" if cfg.channels == 1 else "RGB"
    stats = [(f.name, f.stat().st_size) for f in files]
    key = hashlib.sha256(json.dumps([VERSION, SEED, N_PER_PHOTO, size, mode, stats]).encode())
    path = cache_root(cfg.cache_dir) / f"photos-{size}{mode}-{key.hexdigest()[:16]}{CACHE_SUFFIX}"
    decoded = read_cache(path)
    if decoded is None:
        images = torch.from_numpy(make_crops(files, size, mode))
        labels = torch.arange(len(files)).repeat_interleave(N_PER_PHOTO)
        decoded = Decoded(images, labels, [f.name for f in files], [], None, False)
        if write_cache(path, decoded):
            decoded.cache_file = path
    where = "from the cache" if decoded.from_cache else "generated"
    notes = [
        f"{len(decoded.images)} crops of {size} px ({where}: {decoded.cache_file or 'not cached'}) "
        f"from {', '.join(f.name for f in files)}"
    ]
    return RawDataset(
        ImageSet(decoded.images, decoded.labels),
        test=None,
        source=", ".join(str(f) for f in files),
        notes=notes,
    )
