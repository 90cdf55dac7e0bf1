"""Where a feedback controller keeps its state: numbers on the CPU, tensors on an accelerator.

GECO, the PI controller and capacity control update from the batch's error or KL every step.
On a GPU, turning that into a Python number makes the step wait for the device; there the
state is a 0-d tensor on the device (float64 like a Python number; float32 on MPS, which has
no float64), updated with tensor operations. On the CPU a read costs nothing, and an operation
on a 0-d tensor costs about 20 times its Python counterpart (measured: GECO's update took 94
instead of 43 us a step), so there the state stays a Python float. Either way the state is read
as a number only to be logged or checkpointed, and both paths run the same formulas.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import torch

#: A controller's state value: a float on the host, a 0-d tensor on an accelerator.
Scalar: TypeAlias = float | torch.Tensor

#: Device types whose steps keep controller state as Python numbers.
HOST_DEVICES = frozenset({"cpu"})


def on_host(device: torch.device) -> bool:
    """Whether reading ``device``'s numbers back costs nothing (the CPU). Elsewhere a read
    makes the host wait for the device's queue, so the training loop reads its loss only every
    few steps and controllers keep their state on the device."""
    return device.type in HOST_DEVICES


def _dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def observed(x: torch.Tensor) -> Scalar:
    """A batch quantity (a 0-d tensor, e.g. the mean KL) as controller state."""
    x = x.detach()
    if on_host(x.device):
        return float(x)
    return x.to(_dtype(x.device))


def place(state: Scalar, like: Scalar) -> Scalar:
    """``state`` where ``like`` lives: a float beside a float (or a host tensor), else a 0-d
    tensor on ``like``'s device (moved there once, on the first step)."""
    if not isinstance(like, torch.Tensor) or on_host(like.device):
        return float(state)
    dtype = _dtype(like.device)
    if isinstance(state, torch.Tensor) and state.device == like.device and state.dtype == dtype:
        return state
    return torch.as_tensor(state, dtype=dtype, device=like.device)


def clamp(x: Scalar, low: Scalar, high: Scalar) -> Scalar:
    """``min(max(x, low), high)`` for numbers and tensors alike. Number bounds of a tensor stay
    numbers (or are filled on its device): a bound copied from the host would make a GPU step
    wait for it."""
    if not isinstance(x, torch.Tensor):
        return min(max(x, float(low)), float(high))
    if not isinstance(low, torch.Tensor) and not isinstance(high, torch.Tensor):
        return x.clamp(low, high)

    def bound(v: Scalar) -> torch.Tensor:
        return v if isinstance(v, torch.Tensor) else torch.full_like(x, v)

    return torch.minimum(torch.maximum(x, bound(low)), bound(high))


def exp(x: Scalar) -> Scalar:
    return x.exp() if isinstance(x, torch.Tensor) else math.exp(x)


def factor(state: Scalar, term: torch.Tensor) -> Scalar:
    """``state`` as a factor of ``term`` in an objective: a Python number, or the tensor in the
    term's dtype (a float64 factor would promote the loss to float64)."""
    return state.to(term.dtype) if isinstance(state, torch.Tensor) else state
