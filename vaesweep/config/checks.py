"""Small validators shared by the config schemas; each raises ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vaesweep.errors import ConfigError


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ``ConfigError("key=value: rule")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {rule}")


def one_of(key: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    require(value in allowed, key, value, f"expected one of {', '.join(allowed)}")


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
