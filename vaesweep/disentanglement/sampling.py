"""The two things every metric needs: factor samples, and the representation of chosen factors.

A metric sees the data only through a :class:`FactorSource` (sizes, names, uniform samples of
existing factor combinations) and a *representation function*: factor classes (n, K) int ->
codes (n, D) float, the means of q(z|x) of the images with those factors. Keeping images and
models out of the metric math keeps it pure numpy and testable with known answers (the factors
themselves as codes).

:class:`CachedRepresentation` encodes each combination once: BetaVAE's default draws 1.9 million
images, but dSprites has only 737,280 distinct ones, and the representation is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

Representation = Callable[[np.ndarray], np.ndarray]


class FactorSource(Protocol):
    """What :class:`vaesweep.data.factors.FactorGrid` offers the metrics."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def sizes(self) -> tuple[int, ...]: ...

    @property
    def complete(self) -> bool: ...

    @property
    def total(self) -> int: ...

    def flat_index(self, classes: np.ndarray) -> np.ndarray: ...

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


class CachedRepresentation:
    """Wraps a representation function so each factor combination is encoded once."""

    def __init__(self, source: FactorSource, represent: Representation) -> None:
        self.source = source
        self.represent = represent
        self.codes: np.ndarray | None = None  # (total, D), filled as combinations are seen
        self.known = np.zeros(source.total, dtype=bool)
        self.encoded = 0  # combinations actually encoded, for the record

    def __call__(self, classes: np.ndarray) -> np.ndarray:
        classes = np.asarray(classes, dtype=np.int64)
        flat = self.source.flat_index(classes)
        unique, first = np.unique(flat, return_index=True)
        new_ones = ~self.known[unique]
        missing = unique[new_ones]
        if len(missing):
            new = np.asarray(self.represent(classes[first[new_ones]]))
            if self.codes is None:
                self.codes = np.zeros((self.source.total, new.shape[1]), dtype=np.float64)
            self.codes[missing] = new
            self.known[missing] = True
            self.encoded += len(missing)
        assert self.codes is not None
        return self.codes[flat]


def sample_codes(
    source: FactorSource, represent: Representation, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n uniform factor combinations (n, K) and their codes (n, D)."""
    factors = source.sample_factors(n, rng)
    return factors, np.asarray(represent(factors), dtype=np.float64)


def fixed_factor_batches(
    source: FactorSource, n: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n batches (n, batch, K) that share one factor within each batch, and which (n,)."""
    k = rng.integers(0, len(source.sizes), size=n)
    factors = source.sample_factors(n * batch, rng).reshape(n, batch, -1)
    rows = np.arange(n)
    factors[rows, :, k] = factors[rows, :1, k]
    return factors, k
