"""How many members of a stack a GPU holds: the bound on the default ``--stack-size`` there.

A member of a stack costs its weights, gradients and Adam's two moments
(:data:`~vaesweep.run.assembly.TRAINING_BYTES_PER_PARAMETER` per parameter, counted exactly on
the meta device) and its share of the training step's activations. The activations are
counted from the model's forward pass on the meta device (every leaf module's output for one
batch, float32) and multiplied by :data:`ACTIVATION_FACTOR`, which covers what the backward
pass, autograd's saved tensors and validation add. Measured on an H200 with the default conv
model on Fashion-MNIST (batch 64; ``bench/bench_gpu.py``): every member added 68 MiB to the
stacked trainer's peak (32, 64 and 128 members: 2,278, 4,463 and 8,835 MiB), against 14 MiB of
weights and optimiser state and 11 MiB of forward activations, i.e. 5 times the activations;
the estimate here is 80 MiB.

A stack's members may take :data:`MEMORY_SHARE` of the GPU's memory, and never more than what
the training and validation images (on the device too, as uint8) and :data:`RESERVE` leave:
the CUDA context, the members' end-of-run outputs and the allocator's caching need the rest.
"""

from __future__ import annotations

from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.run.assembly import TRAINING_BYTES_PER_PARAMETER, device_memory
from vaesweep.training.device import resolve_device

#: Training memory per member over the forward pass's activations (measured: about 5).
ACTIVATION_FACTOR = 6
#: The share of a GPU's memory that one stack's members may take together.
MEMORY_SHARE = 0.5
#: Memory kept beside the members and the images: CUDA's context, the allocator's cache and
#: the end-of-run outputs.
RESERVE = 2**30


def forward_activation_bytes(config: Config, shape: tuple[int, int, int]) -> int:
    """Bytes of every leaf module's output in one forward pass (encode, then decode the means)
    of ``config.train.batch_size`` images of ``shape`` (C, H, W), in float32; counted on the
    meta device, so nothing is allocated."""
    return _meta_counts(config, shape)[1]


def member_bytes(config: Config, shape: tuple[int, int, int]) -> int:
    """Estimated GPU memory one member of a stack trains in, in bytes (see the module)."""
    params, activations = _meta_counts(config, shape)
    return params * TRAINING_BYTES_PER_PARAMETER + ACTIVATION_FACTOR * activations


def _meta_counts(config: Config, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(parameters, forward activation bytes) of ``config``'s model, built once on the meta
    device."""
    from vaesweep.model import build_model

    with torch.device("meta"):
        model = build_model(config.model, config.loss, shape, config.data.name)
    elements = 0

    def count(_module: Any, _inputs: Any, output: Any) -> None:
        nonlocal elements
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        elements += sum(t.numel() for t in outputs if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        x = torch.zeros((config.train.batch_size, *shape), device="meta")
        mu, _logvar = model.encode(x)
        model.decode(mu)
    finally:
        for h in hooks:
            h.remove()
    return sum(p.numel() for p in model.parameters()), elements * 4


def gpu_stack_capacity(
    config: Config, shape: tuple[int, int, int], data_bytes: int = 0
) -> int | None:
    """The most members of ``config``'s model that a stack on its GPU may hold (at least 1),
    with ``data_bytes`` of images on the device beside them; None where the run does not
    train on a CUDA GPU or its memory is unknown."""
    device = resolve_device(config.train.device)
    if device.type != "cuda":
        return None
    have = device_memory(device)
    if have is None:
        return None
    try:
        need = member_bytes(config, shape)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return None  # a model whose forward pass the meta device cannot run: no bound
    budget = min(int(MEMORY_SHARE * have), have - data_bytes - RESERVE)
    return max(1, budget // max(need, 1))
