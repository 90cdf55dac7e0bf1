"""scikit-learn's bundled handwritten digits: 1,797 images, 8x8, 17 grey levels (0..16).

The default dataset: it ships with scikit-learn, so it needs no download. Source: the UCI
"Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak 1998). No official test
split exists; validation is carved from the 1,797 images.

The file is read straight from scikit-learn's package data (``digits.csv.gz``: 64 pixel
values then the label per line) rather than through ``sklearn.datasets.load_digits``, whose
import costs over a second in every fresh process of a parallel sweep.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError


def digits_file() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("data=digits needs scikit-learn: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():
        raise UserError(f"scikit-learn's digits file is missing ({path}); reinstall scikit-learn")
    return path


def load_digits(cfg: DataConfig) -> RawDataset:
    path = digits_file()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :64], table[:, 64]
    # 0..16 -> 0..255 with exact endpoints, so 16 is full white like any 8-bit image.
    grey = torch.from_numpy(pixels).view(-1, 1, 8, 8).double().mul(255.0 / 16.0).round()
    images = grey.to(torch.uint8).contiguous()
    return RawDataset(ImageSet(images, torch.from_numpy(labels)), test=None, source=str(path))
