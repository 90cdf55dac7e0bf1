"""KL control: how the KL term is weighted at each step (the ``kl`` config group)."""

from __future__ import annotations

from vaesweep.config import (
    PIKL,
    CapacityKL,
    ConstantKL,
    CyclicalKL,
    FreeBitsKL,
    GecoKL,
    WarmupKL,
)
from vaesweep.control.base import KLControl, RunShape
from vaesweep.control.feedback import Geco, PIController
from vaesweep.control.free_bits import FreeBits
from vaesweep.control.schedules import Capacity, Cyclical, Warmup


def build_control(cfg: object, beta: float, shape: RunShape) -> KLControl:
    """The controller for a ``kl`` config (one of the schemas in vaesweep.config.kl)."""
    if isinstance(cfg, ConstantKL):
        return KLControl(beta, shape)
    if isinstance(cfg, WarmupKL):
        return Warmup(cfg, beta, shape)
    if isinstance(cfg, CyclicalKL):
        return Cyclical(cfg, beta, shape)
    if isinstance(cfg, CapacityKL):
        return Capacity(cfg, beta, shape)
    if isinstance(cfg, FreeBitsKL):
        return FreeBits(cfg, beta, shape)
    if isinstance(cfg, GecoKL):
        return Geco(cfg, beta, shape)
    if isinstance(cfg, PIKL):
        return PIController(cfg, beta, shape)
    raise TypeError(f"unknown kl config {type(cfg).__name__}")


__all__ = ["KLControl", "RunShape", "build_control"]
