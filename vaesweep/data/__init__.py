"""Datasets as in-memory uint8 tensors, one registry for all of them.

``load_splits(cfg)`` returns the fixed train/validation (and, where the dataset has one, test)
split that a run trains on. Loaders: ``digits`` (bundled), ``mnist``, ``fashion_mnist``,
``cifar10``, ``celeba``, ``folder``, and the factor datasets ``dsprites`` and ``shapes``
(generated; their :class:`~vaesweep.data.factors.FactorGrid` comes with the splits).
"""

from vaesweep.data.imageset import ImageSet, RawDataset, Splits
from vaesweep.data.registry import load_splits

__all__ = ["ImageSet", "RawDataset", "Splits", "load_splits"]
