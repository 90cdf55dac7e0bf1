"""Name -> loader, and the post-processing every dataset shares (channels, size, split)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from vaesweep.config import DataConfig
from vaesweep.data.factors import FactorGrid
from vaesweep.data.imageset import (
    ImageSet,
    RawDataset,
    Splits,
    convert_channels,
    resize_center_crop,
    split_train_val,
)
from vaesweep.errors import UserError, printable

Loader = Callable[[DataConfig], RawDataset]

#: data.name -> "module:function"; imported on use, so one loader's imports never slow another.
#: The names are those of ``vaesweep.config.data.DATASETS`` (tests/test_registries.py checks it).
LOADERS: dict[str, str] = {
    "digits": "vaesweep.data.digits:load_digits",
    "mnist": "vaesweep.data.idx:load_mnist",
    "fashion_mnist": "vaesweep.data.idx:load_fashion_mnist",
    "cifar10": "vaesweep.data.cifar:load_cifar10",
    "celeba": "vaesweep.data.celeba:load_celeba",
    "folder": "vaesweep.data.folder:load_folder",
    "dsprites": "vaesweep.data.dsprites:load_dsprites",
    "shapes": "vaesweep.data.shapes:load_shapes",
    "photos": "vaesweep.data.photos:load_photos",
}

#: The datasets that come with an official test split, and where it comes from (their loaders
#: return it as ``RawDataset.test``); the others (digits, folder, photos and the generated
#: dsprites and shapes) have none. tests/test_registries.py checks both against the loaders.
TEST_SPLITS: dict[str, str] = {
    "mnist": "the t10k IDX files",
    "fashion_mnist": "the t10k IDX files",
    "cifar10": "test_batch",
    "celeba": "list_eval_partition.txt next to the images",
}


def no_test_split(name: str) -> str:
    """Why ``data=name`` has no test split, for a message: the file it lacks, or which
    datasets have one."""
    if name in TEST_SPLITS:
        return f"its test split comes from {TEST_SPLITS[name]}, which was not found"
    *most, last = TEST_SPLITS
    return f"{name} comes with none; {', '.join(most)} and {last} do"


def get_loader(name: str) -> Loader:
    if name not in LOADERS:
        raise UserError(f"no dataset named '{name}'; available: {', '.join(LOADERS)}")
    module, func = LOADERS[name].split(":")
    loader: Loader = getattr(importlib.import_module(module), func)
    return loader


def _prepare_images(images: torch.Tensor, cfg: DataConfig, binary: bool = False) -> torch.Tensor:
    images = convert_channels(images, cfg.channels)
    resized = resize_center_crop(images, cfg.image_size)
    if binary and resized is not images:
        # A binary set stays binary (its likelihood is Bernoulli): each pixel takes the value
        # most of the area it covers had, not the grey levels of an antialiased edge.
        resized = torch.where(resized >= 128, 255, 0).to(torch.uint8)
    images = resized
    if cfg.binarize == "static":
        # Threshold at one half (the usual "static" MNIST binarisation without sampling).
        images = torch.where(images >= 128, 255, 0).to(torch.uint8)
    return images


def _prepare(data: ImageSet, cfg: DataConfig, binary: bool = False) -> ImageSet:
    return ImageSet(_prepare_images(data.images, cfg, binary), data.labels, data.factors)


def _prepare_grid(
    grid: FactorGrid | None, cfg: DataConfig, binary: bool = False
) -> FactorGrid | None:
    """A factor grid whose renderer gives images processed like the training images."""
    if grid is None or grid.render is None:
        return grid
    render = grid.render
    return grid.with_render(lambda classes: _prepare_images(render(classes), cfg, binary))


def load_splits(cfg: DataConfig) -> Splits:
    """Load ``cfg.name``, apply channels / size / binarisation, and split off validation."""
    raw = get_loader(cfg.name)(cfg)
    train = raw.train if cfg.limit is None else raw.train.subset(slice(0, cfg.limit))
    train = _prepare(train, cfg, raw.binary)
    if len(train) < 2:
        limit = f" (data.limit={cfg.limit})" if cfg.limit is not None else ""
        raise UserError(
            f"data={cfg.name} has {len(train)} usable image(s) in {printable(raw.source)}{limit}; "
            "at least 2 are needed"
        )
    train, val = split_train_val(train, cfg.val_fraction, cfg.split_seed)
    test = _prepare(raw.test, cfg, raw.binary) if raw.test is not None else None
    grid = _prepare_grid(raw.grid, cfg, raw.binary)
    return Splits(train, val, test, source=raw.source, notes=list(raw.notes), grid=grid)
