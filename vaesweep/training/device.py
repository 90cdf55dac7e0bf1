"""Device choice, thread budget and seeding for one run."""

from __future__ import annotations

import contextlib
import os
import random

import torch

from vaesweep.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"train.device={name} but no CUDA GPU is visible; use train.device=auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(
            f"train.device={name} but MPS is not available; use train.device=auto or cpu"
        )
    return device


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None keeps torch's default); returns the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
        # interop threads can only be set once per process; parallel runs need few anyway.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed Python and torch RNGs; on GPUs, if asked, force deterministic kernels.

    CPU kernels used here are deterministic for a fixed thread count already, so the switch
    (:func:`deterministic_kernels`) is only made where it changes results.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and device.type != "cpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        deterministic_kernels()
        torch.backends.cudnn.benchmark = False


def deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of
    torch's compiler (``torch._inductor``, about 1 s of every GPU run's start, to set a flag
    only ``torch.compile`` reads; vaesweep compiles nothing): the same switch of the kernels,
    set directly where this torch has it."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)
