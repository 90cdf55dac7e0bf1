"""Schema of the ``train`` config group (conf/train/*.yaml); consumed by :mod:`vaesweep.training`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaesweep.config.checks import (
    device_name,
    finite_numbers,
    non_negative,
    one_of,
    positive,
    require,
)

#: ``train.precision``: the dtype of the training forward pass (:mod:`vaesweep.training.precision`).
PRECISIONS = ("fp32", "bf16", "fp16")
#: A run's optimiser steps when ``train.steps`` is null: 50 epochs of the digits default (1,617
#: training images, 26 steps of 64; PSNR within 0.5 dB of 100 epochs) and 100 epochs of a
#: 900-image folder (810 training images, 13 steps).
DEFAULT_STEPS = 1300
#: Datasets whose published protocol fixes the length instead: the β-VAEs of Locatello et al.
#: (2019) on dSprites trained for 300,000 steps of 64 images (29 epochs of the full grid).
PUBLISHED_STEPS = {"dsprites": 300_000}
#: The most torch threads a run may ask for: more than any one machine has CPUs. Threads
#: beyond the CPUs only slow a run down (1,000 on 2 cores: 140 s for a 1 s run), and torch's
#: OpenMP pool crashed starting 100,000 (segmentation fault) or 30,000 (``libgomp: Thread
#: creation failed``) after the run existed.
MAX_THREADS = 4096


def default_steps(dataset: str) -> int:
    """Optimiser steps of a run on ``dataset`` when ``train.steps`` is null."""
    return PUBLISHED_STEPS.get(dataset, DEFAULT_STEPS)


@dataclass
class TrainConfig:
    """Optimisation: Adam over shuffled mini-batches, for ``steps`` optimiser steps or ``epochs``.

    The length is counted in optimiser steps so that it fits the data: by default
    :data:`DEFAULT_STEPS` (50 epochs of digits, 100 of a 900-image folder), or the published
    protocol's length on a dataset that has one (:data:`PUBLISHED_STEPS`); the root config
    fills it in from ``data.name``. ``epochs``, when set, overrides ``steps``.
    """

    #: Optimiser steps of the whole run (the last epoch may stop part-way); see ``epochs``.
    #: None = the dataset's default (:func:`default_steps`; :data:`DEFAULT_STEPS` here).
    steps: int | None = None
    #: Passes over the training images; None = ``steps`` decides. When set, it wins over ``steps``.
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: Clip the global gradient norm to this value; None = no clipping.
    grad_clip: float | None = None
    #: ``auto`` picks cuda, then mps, then cpu; ``cuda:1`` style indices are accepted.
    device: str = "auto"
    #: torch intra-op threads; None = torch's default (a sweep with --jobs N sets cores / N).
    threads: int | None = None
    #: Forward passes of training in ``fp32``, ``bf16`` or ``fp16`` (autocast; the loss terms,
    #: KL, updates and all validation stay fp32; fp16 scales the loss).
    precision: str = "fp32"
    #: Deterministic kernels (bitwise-reproducible CPU runs for a fixed seed).
    deterministic: bool = True
    #: Per-epoch progress bar: auto (only on a terminal), on, off.
    progress: str = "auto"
    #: Validate (and write a metrics row) every N epochs; the last epoch is always validated.
    eval_every: int = 1
    #: Write checkpoint.pt after the first epoch, then once this many seconds of training and
    #: validation have passed since the last one, and after the last epoch: a killed run
    #: resumes from at most this far back. 0 = after every epoch.
    checkpoint_every_s: float = 10.0

    def __post_init__(self) -> None:
        finite_numbers(self, "train")
        positive("train.steps", self.steps, allow_none=True)
        positive("train.epochs", self.epochs, allow_none=True)
        positive("train.batch_size", self.batch_size)
        positive("train.lr", self.lr)
        non_negative("train.weight_decay", self.weight_decay)
        positive("train.grad_clip", self.grad_clip, allow_none=True)
        device_name("train.device", self.device)
        positive("train.threads", self.threads, allow_none=True)
        require(
            self.threads is None or self.threads <= MAX_THREADS,
            "train.threads",
            self.threads,
            f"must be at most {MAX_THREADS} (more than any one machine has CPUs); "
            "null uses torch's default, one per CPU",
        )
        one_of("train.precision", self.precision, PRECISIONS)
        one_of("train.progress", self.progress, ("auto", "on", "off"))
        positive("train.eval_every", self.eval_every)
        non_negative("train.checkpoint_every_s", self.checkpoint_every_s)

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.batch_size)

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of a run over ``n_train`` training images."""
        if self.epochs is not None:
            return self.epochs * self.steps_per_epoch(n_train)
        return DEFAULT_STEPS if self.steps is None else self.steps

    def total_epochs(self, n_train: int) -> int:
        """Epochs begun by such a run (the last one may be partial)."""
        return math.ceil(self.total_steps(n_train) / self.steps_per_epoch(n_train))
