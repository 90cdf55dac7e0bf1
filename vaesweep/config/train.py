"""Schema of the ``train`` config group (conf/train/*.yaml); consumed by :mod:`vaesweep.training`."""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import device_name, finite_numbers, non_negative, one_of, positive


@dataclass
class TrainConfig:
    """Optimisation: Adam over ``epochs`` passes of shuffled mini-batches."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: Clip the global gradient norm to this value; None = no clipping.
    grad_clip: float | None = None
    #: ``auto`` picks cuda, then mps, then cpu; ``cuda:1`` style indices are accepted.
    device: str = "auto"
    #: torch intra-op threads; None = torch's default (a sweep with --jobs N sets cores / N).
    threads: int | None = None
    #: Deterministic kernels (bitwise-reproducible CPU runs for a fixed seed).
    deterministic: bool = True
    #: Per-epoch progress bar: auto (only on a terminal), on, off.
    progress: str = "auto"
    #: Validate (and write a metrics row) every N epochs; the last epoch is always validated.
    eval_every: int = 1

    def __post_init__(self) -> None:
        finite_numbers(self, "train")
        positive("train.epochs", self.epochs)
        positive("train.batch_size", self.batch_size)
        positive("train.lr", self.lr)
        non_negative("train.weight_decay", self.weight_decay)
        positive("train.grad_clip", self.grad_clip, allow_none=True)
        device_name("train.device", self.device)
        positive("train.threads", self.threads, allow_none=True)
        one_of("train.progress", self.progress, ("auto", "on", "off"))
        positive("train.eval_every", self.eval_every)
