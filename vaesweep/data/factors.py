"""Datasets with known generative factors: the factor grid, its ordering, and rendering.

A factor dataset (dSprites, shapes) is the Cartesian product of K discrete factors. Images are
indexed by their *classes* (one int per factor, 0..size-1), and the flat index of a combination
is ``sum_k classes[k] * base[k]`` with ``base = prod(sizes) / cumprod(sizes)``: the last factor
varies fastest, the ordering of the original dSprites file (Matthey et al. 2017).

The disentanglement metrics need images for factor combinations they choose (Higgins et al.
2017; Kim & Mnih 2018 fix one factor and vary the rest), so a grid carries ``render``: classes
(n, K) -> uint8 images (n, C, H, W), after the same channel/size processing the training images
got. Where only some combinations exist (a partial npz), ``present`` lists their flat indices
and :meth:`FactorGrid.sample_factors` draws from those; metrics that fix factors then cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

Render = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class FactorGrid:
    """K discrete factors: their names, sizes, values, and a renderer for any combination."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    #: The value of each class of each factor (e.g. scale 0.5..1.0), for labels and reports.
    values: tuple[tuple[float, ...], ...]
    #: classes (n, K) int64 -> uint8 images (n, C, H, W); None when the grid is incomplete.
    render: Render | None = field(default=None, compare=False, repr=False)
    #: Sorted flat indices of the combinations that exist; None = every combination.
    present: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.sizes) == len(self.values)):
            raise ValueError("names, sizes and values need one entry per factor")
        for name, size, vals in zip(self.names, self.sizes, self.values):
            if size < 1 or len(vals) != size:
                raise ValueError(f"factor {name}: {len(vals)} values for size {size}")

    @property
    def num_factors(self) -> int:
        return len(self.sizes)

    @property
    def total(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def complete(self) -> bool:
        """Every combination exists and can be rendered (what BetaVAE/FactorVAE scores need)."""
        return self.present is None and self.render is not None

    @property
    def bases(self) -> np.ndarray:
        sizes = np.asarray(self.sizes, dtype=np.int64)
        return np.prod(sizes) // np.cumprod(sizes)

    def flat_index(self, classes: np.ndarray) -> np.ndarray:
        """classes (n, K) -> flat indices (n,) in the grid's (last-fastest) ordering."""
        return np.asarray(classes, dtype=np.int64) @ self.bases

    def classes_of(self, flat: np.ndarray) -> np.ndarray:
        """Flat indices (n,) -> classes (n, K); the inverse of :meth:`flat_index`."""
        flat = np.asarray(flat, dtype=np.int64)
        return (flat[:, None] // self.bases[None, :]) % np.asarray(self.sizes)[None, :]

    def all_classes(self) -> np.ndarray:
        """Every combination in grid order, (total, K) int64."""
        return self.classes_of(np.arange(self.total, dtype=np.int64))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n combinations drawn uniformly from those that exist, (n, K) int64."""
        if self.present is None:
            return np.stack([rng.integers(0, s, size=n) for s in self.sizes], axis=1)
        return self.classes_of(self.present[rng.integers(0, len(self.present), size=n)])

    def factor_values(self, classes: np.ndarray) -> np.ndarray:
        """classes (n, K) -> the factors' values (n, K) float64."""
        cols = [np.asarray(v, dtype=np.float64)[classes[:, k]] for k, v in enumerate(self.values)]
        return np.stack(cols, axis=1)

    def with_render(self, render: Render | None) -> FactorGrid:
        return replace(self, render=render)


def values_of(*columns: Sequence[float] | np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Factor value lists as the nested tuples :class:`FactorGrid` stores."""
    return tuple(tuple(float(x) for x in col) for col in columns)
