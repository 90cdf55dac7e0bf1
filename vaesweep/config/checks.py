"""Small validators shared by the config schemas; each raises ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from typing import Any

from vaesweep.errors import ConfigError


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ``ConfigError("key=value: rule")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {rule}")


#: The largest float32 number: training, its loss terms and the KL controllers' weights
#: compute in float32, where anything larger is ``inf``.
FLOAT32_MAX = 3.4028234663852886e38
#: The smallest normal float32 number; a non-zero setting closer to 0 rounds away there.
FLOAT32_TINY = 1.1754943508222875e-38


def finite_numbers(schema: Any, group: str) -> None:
    """Refuse ``inf``, ``nan`` and magnitudes float32 cannot hold in every float field.

    Every schema calls this first in ``__post_init__``, so a value that cannot train is named
    before any range rule reads it (``nan > 0`` is False, and ``inf`` passes ``> 0``). Training
    computes in float32, so ``1e300`` is ``inf`` there and ``1e-300`` is 0 (``beta=1e300``
    made the first loss ``inf``; ``kl.kappa=1e-300`` a ``math domain error``): a non-zero
    magnitude must lie in [:data:`FLOAT32_TINY`, :data:`FLOAT32_MAX`].
    """
    for f in dataclasses.fields(schema):
        value = getattr(schema, f.name)
        if not isinstance(value, float):
            continue
        key = f"{group}.{f.name}" if group else f.name
        example = f.default if isinstance(f.default, (int, float)) else 1.0
        if not math.isfinite(value):
            raise ConfigError(
                f"{key}={value} is invalid: must be a finite number, e.g. {key}={example}"
            )
        if value != 0 and not FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
            raise ConfigError(
                f"{key}={value} is invalid: training computes in float32, which holds "
                f"magnitudes from {sci(FLOAT32_TINY)} to {sci(FLOAT32_MAX)} (and 0), "
                f"e.g. {key}={example}"
            )


#: The largest weight on a loss term (``beta``, ``kl.gamma``, ``kl.beta_max``,
#: ``kl.lambda_max``): the weighted term must stay far inside float32 for any KL a run can
#: reach (``beta=1e38`` made the first validation loss ``inf``), and Adam squares the
#: gradients it makes (float32 overflows past 1.8e19). Useful weights are many orders smaller.
MAX_WEIGHT = 1e12
#: The most nats a KL target (``kl.lam``, ``kl.c_max``, ``kl.target``) may ask for: all an
#: image here can carry, 3 x 1024 x 1024 pixels of 8 bits (``data.image_size`` <= 1024),
#: 1.7e7 nats. A target of ``3e38`` nats made the validation loss ``inf``.
MAX_NATS = 3 * 1024 * 1024 * 8 * math.log(2)


def sci(x: float) -> str:
    """A number for a message as a user would type it: 1e12, 1.7e7, 0.5."""
    return f"{x:.2g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def weight(key: str, value: float, *, allow_zero: bool = True) -> None:
    """A weight on a loss term: >= 0 (> 0 unless ``allow_zero``) and at most :data:`MAX_WEIGHT`."""
    if allow_zero:
        non_negative(key, value)
    else:
        positive(key, value)
    require(
        value <= MAX_WEIGHT,
        key,
        value,
        f"must be at most {sci(MAX_WEIGHT)}, so that the term it weighs stays within "
        "float32 (useful weights are many orders smaller)",
    )


def nats(key: str, value: float) -> None:
    """A KL target in nats: >= 0 and at most :data:`MAX_NATS`."""
    non_negative(key, value)
    require(
        value <= MAX_NATS,
        key,
        value,
        f"must be at most {sci(MAX_NATS)} nats, all that any image here can carry "
        "(3x1024x1024 pixels of 8 bits)",
    )


def one_of(key: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    require(value in allowed, key, value, f"expected one of {', '.join(allowed)}")


#: ``auto``, or a torch device type with an optional index (``cuda:1``, ``cpu:0``).
DEVICE_PATTERN = re.compile(r"auto|(?:cpu|cuda|mps)(?::(?:0|[1-9][0-9]*))?")


def device_name(key: str, value: str) -> None:
    require(
        isinstance(value, str) and DEVICE_PATTERN.fullmatch(value) is not None,
        key,
        value,
        "expected auto, cpu, cuda, cuda:N (N the GPU index, e.g. cuda:1) or mps",
    )


def positive(key: str, value: float | int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    require(value is not None and value > 0, key, value, "must be > 0")


def non_negative(key: str, value: float | int) -> None:
    require(value is not None and value >= 0, key, value, "must be >= 0")


def fraction(key: str, value: float, *, open_low: bool = True, closed_high: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value <= 1 if closed_high else value < 1
    rng = ("(0" if open_low else "[0") + (", 1]" if closed_high else ", 1)")
    require(low_ok and high_ok, key, value, f"must lie in {rng}")
