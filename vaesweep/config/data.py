"""Schema of the ``data`` config group (conf/data/*.yaml); consumed by :mod:`vaesweep.data`."""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import finite_numbers, fraction, one_of, positive, require

DATASETS = (
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeba",
    "folder",
    "dsprites",
    "shapes",
    "photos",
)
#: The datasets whose pixels take grey levels (dsprites is binary; shapes' colours are solid).
GREY_LEVEL_DATA = ("digits", "mnist", "fashion_mnist", "cifar10", "celeba", "folder", "photos")
BINARIZE = ("none", "static", "dynamic")
#: The largest ``data.image_size``: every image is held in memory at this side (50,000 RGB
#: images take 157 GB at 1024 px), and no model here is built for more.
MAX_IMAGE_SIZE = 1024
#: The largest ``data.val_fraction``: beyond it the validation set outgrows the training set
#: (0.999 left 2 of digits' 1,797 images to train on, and a small folder none).
MAX_VAL_FRACTION = 0.5


@dataclass
class DataConfig:
    """Which images to train on and how to split them.

    Every dataset becomes uint8 images of shape (N, C, H, W) held in memory; pixels are scaled
    to [0, 1] when a batch is taken.
    """

    name: str = "digits"
    #: Folder holding the standard datasets (torchvision layout or the original files).
    root: str = "data"
    #: The image folder for ``name=folder`` (nested class folders or flat).
    path: str | None = None
    #: Resize (shorter side) and center-crop to this many pixels; None keeps the native size.
    image_size: int | None = None
    #: 1 = grayscale, 3 = RGB, None = the dataset's own channel count.
    channels: int | None = None
    #: Share of the training images held out for validation (a fixed, seeded split).
    val_fraction: float = 0.1
    #: Seed of the train/validation split; independent of the training seed on purpose,
    #: so runs with different ``seed`` are evaluated on the same images.
    split_seed: int = 0
    #: Use only the first N images of the training set (quick experiments); None = all.
    limit: int | None = None
    #: Allow torchvision to download a standard dataset that is not under ``root``.
    download: bool = False
    #: ``static``: threshold once at 0.5; ``dynamic``: resample pixels ~ Bernoulli(x) per batch.
    binarize: str = "none"
    #: Where decoded image folders are cached; None = ``$VAESWEEP_CACHE_DIR/folders``, else
    #: ``~/.cache/vaesweep/folders``.
    cache_dir: str | None = None
    #: Mirror each training image left-right with probability 1/2 (training batches only).
    augment_flip: bool = False
    #: Random square crops of a side fraction in [augment_crop, 1], resized back (training
    #: batches only); None = no cropping.
    augment_crop: float | None = None

    def __post_init__(self) -> None:
        finite_numbers(self, "data")
        one_of("data.name", self.name, DATASETS)
        one_of("data.binarize", self.binarize, BINARIZE)
        fraction("data.val_fraction", self.val_fraction)
        require(
            self.val_fraction <= MAX_VAL_FRACTION,
            "data.val_fraction",
            self.val_fraction,
            f"at most {MAX_VAL_FRACTION} (half the images) may be held out for validation, "
            "or too few are left to train on; e.g. data.val_fraction=0.1",
        )
        positive("data.image_size", self.image_size, allow_none=True)
        if self.image_size is not None:
            require(self.image_size >= 8, "data.image_size", self.image_size, "must be >= 8")
            require(
                self.image_size <= MAX_IMAGE_SIZE,
                "data.image_size",
                self.image_size,
                f"must be at most {MAX_IMAGE_SIZE} pixels (every image is held in memory at "
                "that size), e.g. data.image_size=64",
            )
        if self.channels is not None:
            one_of("data.channels", str(self.channels), ("1", "3"))
        positive("data.limit", self.limit, allow_none=True)
        if self.augment_crop is not None:
            require(
                0 < self.augment_crop <= 1,
                "data.augment_crop",
                self.augment_crop,
                "must be a side fraction in (0, 1], e.g. 0.8, or null for no cropping",
            )
        if self.name == "folder":
            require(
                bool(self.path),
                "data.path",
                self.path,
                "data=folder needs the image folder, e.g. data.path=~/paintings",
            )
