"""scikit-learn's bundled handwritten digits: 1,797 images, 8x8, 17 grey levels (0..16).

The default dataset: it ships with scikit-learn, so it needs no download. Source: the UCI
"Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak 1998). No official test
split exists; validation is carved from the 1,797 images.
"""

from __future__ import annotations

import torch

from vaesweep.config import DataConfig
from vaesweep.data.imageset import ImageSet, RawDataset


def load_digits(cfg: DataConfig) -> RawDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # 0..16 -> 0..255 with exact endpoints, so 16 is full white like any 8-bit image.
    grey = torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().to(torch.uint8)
    images = grey.unsqueeze(1).contiguous()
    labels = torch.from_numpy(bunch.target).long()
    return RawDataset(ImageSet(images, labels), test=None, source="sklearn.datasets.load_digits")
