"""Where a model's tensors live, and in which memory layout.

On the CPU, PyTorch's convolution kernels (oneDNN) run image layers faster in the channels-last
layout (N, H, W, C in memory) than in the default N, C, H, W, most of all the transposed
convolutions of a decoder: a conv model's weights are therefore kept channels-last on the
CPU, and its activations follow them from layer to layer. The decoder's output is made
contiguous again (:meth:`~vaesweep.model.vae.VAE.decode`), so the loss and everything after it
see the usual layout. Parameter names, shapes and values are unchanged (checkpoints load into
either layout); only float rounding differs between the two kernels.

Measured on the 2-core CPU (median of alternating repeats; README, "Performance"): decoding
512 Fashion-MNIST images (the IWAE's unit of work) 72 -> 46 ms with two threads and 90 -> 67 ms
with one; a training step of batch 64 27.5 -> 24.2 ms; 64 x 64 images 1.10x (conv) and 1.03x
(resconv) per training step, 1.37x and 1.52x per decode. Images of at most
:data:`~vaesweep.model.small_images.TINY_PIXELS` pixels (8 x 8 digits) gain nothing and keep the
default layout, as do GPUs (whose layout choice depends on precision and tensor cores).
Stacks (``StackedVAE``) follow the same rule: where it holds they run their conv stages member
by member in this layout, because one grouped convolution for all members measured slower
in either layout (a 4-member Fashion-MNIST step with one thread: grouped 218.6 ms, member by
member 184.6 ms).
"""

from __future__ import annotations

import torch
from torch import nn

from vaesweep.model.small_images import TINY_PIXELS


def prefers_channels_last(device: torch.device, shape: tuple[int, int, int]) -> bool:
    """Whether a single model for images of ``shape`` (C, H, W) on ``device`` keeps its
    convolution weights channels-last."""
    return device.type == "cpu" and shape[1] * shape[2] > TINY_PIXELS


def place(model: nn.Module, device: torch.device, shape: tuple[int, int, int]) -> nn.Module:
    """Move ``model`` to ``device`` in its preferred layout (:func:`prefers_channels_last`);
    modules without 4-d weights (MLPs) are only moved. Returns the same module."""
    model.to(device)
    if prefers_channels_last(device, shape):
        model.to(memory_format=torch.channels_last)
    return model
