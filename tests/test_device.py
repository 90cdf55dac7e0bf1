"""Device choice and seeding for one run (vaesweep/training/device.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vaesweep.errors import UserError
from vaesweep.training.device import resolve_device

#: Seeds as a GPU run does (the meta device stands in: only ``device.type != "cpu"`` matters),
#: then prints the kernel switches and whether torch's compiler was imported.
_GPU_SEEDING = """
import sys, torch
from vaesweep.training.device import seed_everything
seed_everything(0, True, torch.device("meta"))
print(torch.are_deterministic_algorithms_enabled(),
      torch.is_deterministic_algorithms_warn_only_enabled(),
      torch.backends.cudnn.benchmark,
      "torch._inductor" in sys.modules)
"""


def test_gpu_runs_get_deterministic_kernels_without_importing_the_compiler() -> None:
    """``torch.use_deterministic_algorithms`` imports ``torch._inductor`` (about 1 s of each
    GPU run's start, measured 1.05 s here) to set a flag only ``torch.compile`` reads; the
    same kernel switch is set directly, in warn-only mode (a kernel without a deterministic
    form warns instead of stopping the run)."""
    out = subprocess.run(
        [sys.executable, "-c", _GPU_SEEDING], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True", "False", "False"]


def test_an_absent_device_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"train\.device=cuda but no CUDA GPU is visible"):
        resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
