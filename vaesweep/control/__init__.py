"""KL control: how the KL term is weighted at each step (the ``kl`` config group)."""

from __future__ import annotations

from typing import Any

from vaesweep.control.base import KLControl, RunShape
from vaesweep.control.feedback import Geco, PIController
from vaesweep.control.free_bits import FreeBits
from vaesweep.control.schedules import Capacity, Cyclical, Warmup

#: ``kl.method`` -> controller class; each takes (its kl config, beta, RunShape).
CONTROLLERS: dict[str, type[KLControl]] = {
    "warmup": Warmup,
    "cyclical": Cyclical,
    "capacity": Capacity,
    "free_bits": FreeBits,
    "geco": Geco,
    "pi": PIController,
}


def build_control(cfg: Any, beta: float, shape: RunShape) -> KLControl:
    """The controller for a ``kl`` config (one of the schemas in vaesweep.config.kl)."""
    if cfg.method == "constant":
        return KLControl(beta, shape)
    if cfg.method not in CONTROLLERS:
        raise TypeError(f"unknown kl method {cfg.method!r}")
    return CONTROLLERS[cfg.method](cfg, beta, shape)  # type: ignore[call-arg]


__all__ = ["CONTROLLERS", "KLControl", "RunShape", "build_control"]
