"""Mixed precision for the training step (``train.precision``).

The encoder and decoder run under :func:`torch.autocast` in bf16 or fp16; the loss terms, the
KL and the parameter updates stay in fp32 (the forward outputs are cast back before
:func:`~vaesweep.objective.terms.loss_terms`), so nats per image are summed in fp32 whatever the
precision. fp16 scales the loss with a :class:`torch.amp.GradScaler` (Micikevicius et al. 2018,
"Mixed Precision Training"): fp16's narrow exponent range would flush small gradients to zero,
and a step whose scaled gradients overflow is skipped while the scale backs off. bf16 has
fp32's exponent range and needs no scaling. Validation and every metric run in fp32, so the
record of a bf16 run is comparable with an fp32 run's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from vaesweep.config.train import PRECISIONS

#: ``train.precision`` -> the autocast dtype (None: plain fp32).
DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
assert tuple(DTYPES) == PRECISIONS, "train.precision's names live in config.train"

log = logging.getLogger(__name__)


@dataclass
class Precision:
    """Autocast and loss scaling of one training loop on one device."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        dtype = DTYPES[self.name]
        self.dtype = dtype
        if dtype is torch.float16 and self.device.type == "cpu":
            log.warning(
                "train.precision=fp16 on the CPU: CPUs have few fp16 kernels, so this trains "
                "many times slower than fp32; use train.precision=bf16 (or fp32) on a CPU"
            )
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler(self.device.type) if dtype is torch.float16 else None
        )

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass of a training step (a no-op in fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    def backward(self, objective: torch.Tensor) -> None:
        if self.scaler is None:
            objective.backward()
        else:
            self.scaler.scale(objective).backward()

    def unscale(self, optimizer: Any) -> None:
        """Before gradient clipping: bring the gradients back to their true size."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: Any) -> None:
        """The optimiser step (skipped by the scaler when fp16 gradients overflowed)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
