"""KL control: how the KL term is weighted at each step (the ``kl`` config group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaesweep.control.base import KLControl, RunShape
from vaesweep.control.feedback import Geco, PIController
from vaesweep.control.free_bits import FreeBits
from vaesweep.control.schedules import Capacity, Cyclical, Warmup


def _constant(cfg: Any, beta: float, shape: RunShape) -> KLControl:
    return KLControl(beta, shape)


#: ``kl.method`` -> controller factory, taking (its kl config, beta, RunShape). The method
#: names are those of ``vaesweep.config.kl.KL_SCHEMAS`` (tests/test_registries.py checks it).
CONTROLLERS: dict[str, Callable[[Any, float, RunShape], KLControl]] = {
    "constant": _constant,
    "warmup": Warmup,
    "cyclical": Cyclical,
    "capacity": Capacity,
    "free_bits": FreeBits,
    "geco": Geco,
    "pi": PIController,
}


def build_control(cfg: Any, beta: float, shape: RunShape) -> KLControl:
    """The controller for a ``kl`` config (one of the schemas in vaesweep.config.kl)."""
    factory = CONTROLLERS.get(cfg.method)
    if factory is None:  # the schema has already refused unknown methods
        raise TypeError(f"unknown kl method {cfg.method!r}; available: {', '.join(CONTROLLERS)}")
    return factory(cfg, beta, shape)


__all__ = ["CONTROLLERS", "KLControl", "RunShape", "build_control"]
