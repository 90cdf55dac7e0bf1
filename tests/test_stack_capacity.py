"""The default ``--stack-size`` on a GPU: GPU_STACK_SIZE, bounded by the members its memory holds.

No GPU here: the tests make ``train.device=auto`` resolve to CUDA and give the GPU a memory
size, and check the estimate against the figure measured on an H200 (bench/bench_gpu.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.commands.sweep_stacks import default_stack_size
from vaesweep.config import Config, ConvConfig, DataConfig, TrainConfig
from vaesweep.config.stacking import DEFAULT_STACK_SIZE, GPU_STACK_SIZE
from vaesweep.data import load_splits
from vaesweep.model.fit import parameter_count
from vaesweep.run import stack_capacity
from vaesweep.run.assembly import TRAINING_BYTES_PER_PARAMETER
from vaesweep.run.stack_capacity import (
    ACTIVATION_FACTOR,
    MEMORY_SHARE,
    RESERVE,
    forward_activation_bytes,
    gpu_stack_capacity,
    member_bytes,
)

runner = CliRunner()
MiB = 2**20
FASHION = (1, 28, 28)
DIGITS = (1, 8, 8)


def _config(batch_size: int = 64, device: str = "auto") -> Config:
    return Config(
        data=DataConfig(name="fashion_mnist"),
        model=ConvConfig(),
        train=TrainConfig(batch_size=batch_size, device=device),
    )


def test_member_estimate_covers_what_an_h200_measured() -> None:
    """Each member of the default conv model on Fashion-MNIST (batch 64) added 68 MiB to the
    stacked trainer's peak on an H200 (32 -> 64 -> 128 members: 2,278 -> 4,463 -> 8,835 MiB):
    the estimate must not be below it, nor so far above that it wastes the GPU."""
    config = _config()
    estimate = member_bytes(config, FASHION)
    assert 68 * MiB <= estimate <= 1.5 * 68 * MiB
    weights = parameter_count(config.model, config.loss, FASHION) * TRAINING_BYTES_PER_PARAMETER
    assert estimate - weights == ACTIVATION_FACTOR * forward_activation_bytes(config, FASHION)


def test_activations_grow_with_the_batch_and_nothing_is_allocated() -> None:
    one, two = (forward_activation_bytes(_config(b), FASHION) for b in (32, 64))
    assert two == 2 * one > 0
    # The input alone: 64 images of 784 float32 pixels; every layer adds its output.
    assert two > 64 * 784 * 4


def test_no_capacity_off_a_gpu() -> None:
    assert gpu_stack_capacity(_config(device="cpu"), FASHION) is None
    if not torch.cuda.is_available():
        assert gpu_stack_capacity(_config(device="auto"), FASHION) is None


def _a_gpu(monkeypatch: pytest.MonkeyPatch, memory: int) -> None:
    """Make ``train.device=auto`` resolve to a one-GPU machine whose GPU has ``memory``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(stack_capacity, "device_memory", lambda device: memory)


def test_capacity_is_the_share_of_memory_over_a_member(monkeypatch: pytest.MonkeyPatch) -> None:
    _a_gpu(monkeypatch, 16 * 2**30)
    config = _config()
    member = member_bytes(config, FASHION)
    expected = int(MEMORY_SHARE * 16 * 2**30) // member
    assert gpu_stack_capacity(config, FASHION) == expected
    # Images on the device beside the members: what they and the reserve leave, if less.
    assert gpu_stack_capacity(config, FASHION, data_bytes=2**30) == expected
    data = 12 * 2**30  # e.g. a large image folder held on a 16 GiB GPU
    fewer = gpu_stack_capacity(config, FASHION, data_bytes=data)
    assert fewer == (16 * 2**30 - data - RESERVE) // member < expected
    _a_gpu(monkeypatch, 1 * MiB)  # not even one member: stacks of one, i.e. no stacking
    assert gpu_stack_capacity(config, FASHION) == 1


def test_default_stack_size() -> None:
    assert default_stack_size(None) == DEFAULT_STACK_SIZE  # a CPU, or a cluster's nodes
    assert default_stack_size(10_000) == GPU_STACK_SIZE
    assert default_stack_size(20) == 20
    assert default_stack_size(40, parallel=2) == 20  # --jobs 2: two stacks share the GPU
    assert default_stack_size(1) == default_stack_size(0) == 1


def test_a_sweep_on_a_gpu_stacks_by_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    betas = "beta=" + ",".join(f"{0.01 * (i + 1):.2f}" for i in range(40))
    _a_gpu(monkeypatch, 140 * 2**30)  # an H200: 32 members, then the other 8
    result = runner.invoke(app, ["sweep", betas, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "40 would run in 2 stacks" in result.output
    assert "stacks of at most" not in result.output
    # A small GPU: fewer members per stack, and the sweep says why.
    digits = Config(model=ConvConfig(), train=TrainConfig(device="auto"))
    splits = load_splits(digits.data)
    images = splits.train.images.numel() + splits.val.images.numel()  # uint8: bytes
    memory = RESERVE + 200 * MiB
    _a_gpu(monkeypatch, memory)
    budget = min(int(MEMORY_SHARE * memory), memory - images - RESERVE)
    fits = budget // member_bytes(digits, DIGITS)
    assert 2 <= fits < GPU_STACK_SIZE
    result = runner.invoke(app, ["sweep", betas, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"40 would run in {math.ceil(40 / fits)} stacks" in result.output
    assert f"stacks of at most {fits}" in " ".join(result.output.split())
    # --stack-size is the user's choice, GPU or not.
    result = runner.invoke(app, ["sweep", betas, "--dry-run", "--stack-size", "4"])
    assert result.exit_code == 0 and "40 would run in 10 stacks" in result.output
