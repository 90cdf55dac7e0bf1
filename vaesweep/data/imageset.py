"""In-memory image sets and the transformations every dataset shares.

Every loader returns uint8 tensors of shape (N, C, H, W); training slices batches straight from
them, so no per-image Python work happens inside the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vaesweep.data.factors import FactorGrid
from vaesweep.errors import UserError


@dataclass
class ImageSet:
    """uint8 ``images`` (N, C, H, W) with int64 ``labels`` (N,); labels are -1 when unknown.

    Factor datasets also keep each image's factor classes, int64 ``factors`` (N, K).
    """

    images: torch.Tensor
    labels: torch.Tensor
    factors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.shape != (len(self.images),):
            raise ValueError("labels must have one entry per image")
        if self.factors is not None and (
            self.factors.ndim != 2 or len(self.factors) != len(self.images)
        ):
            raise ValueError("factors must be (N, K): one row of factor classes per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        factors = None if self.factors is None else self.factors[index]
        return ImageSet(self.images[index], self.labels[index], factors)

    def to(self, device: torch.device | str) -> ImageSet:
        factors = None if self.factors is None else self.factors.to(device)
        return ImageSet(self.images.to(device), self.labels.to(device), factors)


@dataclass
class RawDataset:
    """What a loader returns: the training images, the official test set if any, and notes."""

    train: ImageSet
    test: ImageSet | None
    source: str
    notes: list[str] = field(default_factory=list)
    #: The factor grid of a factor dataset (dSprites, shapes); None for other datasets.
    grid: FactorGrid | None = None
    #: Binary images (0 and 255 only, as dSprites): a resize keeps them binary.
    binary: bool = False


@dataclass
class Splits:
    """The fixed train / validation (/ test) split a run trains and evaluates on."""

    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    source: str
    notes: list[str] = field(default_factory=list)
    grid: FactorGrid | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.shape


def labels_unknown(n: int) -> torch.Tensor:
    return torch.full((n,), -1, dtype=torch.long)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W); RGB->gray uses ITU-R 601 luma (as PIL does)."""
    c = images.shape[1]
    if channels is None or channels == c:
        return images
    if channels == 3 and c == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and c == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        gray = (images.float() * weights).sum(1, keepdim=True)
        return gray.round().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def resize_center_crop(images: torch.Tensor, size: int | None, chunk: int = 4096) -> torch.Tensor:
    """Resize so the shorter side is ``size`` (antialiased bilinear), then center-crop to square."""
    if size is None:
        return images
    n, _, h, w = images.shape
    if h == w == size:
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = []
    for start in range(0, n, chunk):
        part = images[start : start + chunk].float()
        part = F.interpolate(
            part, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
        top, left = (new_h - size) // 2, (new_w - size) // 2
        part = part[:, :, top : top + size, left : left + size]
        out.append(part.round().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def split_train_val(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """A seeded random split; the same ``seed`` gives the same validation images everywhere."""
    n = len(data)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise UserError(
            f"data.val_fraction={val_fraction} holds out {n_val} of {n} images for validation, "
            "leaving none to train on; lower it (e.g. 0.1) or use more images"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[n_val:].sort().values), data.subset(perm[:n_val].sort().values)
