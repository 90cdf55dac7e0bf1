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


def finite_numbers(schema: Any, group: str) -> None:
    """Refuse ``inf`` and ``nan`` in every float field of a schema dataclass.

    Every schema calls this first in ``__post_init__``, so a value that cannot train is named
    before any range rule reads it (``nan > 0`` is False, and ``inf`` passes ``> 0``).
    """
    for f in dataclasses.fields(schema):
        value = getattr(schema, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            key = f"{group}.{f.name}" if group else f.name
            example = f.default if isinstance(f.default, (int, float)) else 1.0
            raise ConfigError(
                f"{key}={value} is invalid: must be a finite number, e.g. {key}={example}"
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
