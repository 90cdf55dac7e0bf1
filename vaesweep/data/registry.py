"""Name -> loader, and the post-processing every dataset shares (channels, size, split)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from vaesweep.config import DataConfig
from vaesweep.data.imageset import (
    ImageSet,
    RawDataset,
    Splits,
    convert_channels,
    resize_center_crop,
    split_train_val,
)
from vaesweep.errors import UserError

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
}


def get_loader(name: str) -> Loader:
    if name not in LOADERS:
        raise UserError(f"no dataset named '{name}'; available: {', '.join(LOADERS)}")
    module, func = LOADERS[name].split(":")
    loader: Loader = getattr(importlib.import_module(module), func)
    return loader


def _prepare(data: ImageSet, cfg: DataConfig) -> ImageSet:
    images = convert_channels(data.images, cfg.channels)
    images = resize_center_crop(images, cfg.image_size)
    if cfg.binarize == "static":
        # Threshold at one half (the usual "static" MNIST binarisation without sampling).
        images = torch.where(images >= 128, 255, 0).to(torch.uint8)
    return ImageSet(images, data.labels)


def load_splits(cfg: DataConfig) -> Splits:
    """Load ``cfg.name``, apply channels / size / binarisation, and split off validation."""
    raw = get_loader(cfg.name)(cfg)
    train = raw.train if cfg.limit is None else raw.train.subset(slice(0, cfg.limit))
    train = _prepare(train, cfg)
    if len(train) < 2:
        raise UserError(f"data={cfg.name} has {len(train)} usable image(s); at least 2 are needed")
    train, val = split_train_val(train, cfg.val_fraction, cfg.split_seed)
    test = _prepare(raw.test, cfg) if raw.test is not None else None
    return Splits(train=train, val=val, test=test, source=raw.source, notes=list(raw.notes))
