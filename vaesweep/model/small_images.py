"""Layers that read or write small images, computed as one matrix product and im2col / col2im.

A transposed convolution that writes an 8 x 8 single-channel image (the digits decoder's last
layer) is a poor fit for the CPU's convolution kernels: PyTorch falls back to a slow path for
it. The same arithmetic as one matrix product followed by ``F.fold`` (col2im, the definition of
a transposed convolution) is several times faster. Measured on the 2-core CPU for 512 images,
``ConvTranspose2d(32, 1, 4, stride=2, padding=1)`` forward: 3.2 ms against 0.64 ms; a default
digits validation (its 2,048-image expected-gradient pass decodes through this layer) took
44-53 ms instead of 60-63 ms with one thread, 35 ms instead of 49-55 ms with two. On larger
images or more channels the convolution kernels win, so the fold path is used only where
:func:`fold_writes_faster` holds. Both paths compute the same function (tested against
``F.conv_transpose2d``); they differ only in float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Image-side layers with at most this many pixels ...
TINY_PIXELS = 64
#: ... and at most this many image channels take the matmul + im2col / col2im path on the CPU.
TINY_CHANNELS = 4
#: Transposed convolutions that write one channel take it up to this many output pixels.
ONE_CHANNEL_PIXELS = 1024


def is_small(device: torch.device, pixels: int, channels: int) -> bool:
    """Whether a layer on ``device`` whose image side has ``pixels`` pixels (H * W) and
    ``channels`` channels takes the matmul + im2col / col2im path."""
    return device.type == "cpu" and pixels <= TINY_PIXELS and channels <= TINY_CHANNELS


def fold_writes_faster(device: torch.device, pixels: int, channels: int) -> bool:
    """Whether a transposed convolution writing ``channels`` x ``pixels`` takes the matmul +
    col2im path: small images (:func:`is_small`), or one channel of up to
    :data:`ONE_CHANNEL_PIXELS` (a grey-scale decoder's last layer at 28 or 32 px).

    Measured forward + backward on the 2-core CPU, batch 64, kernel 4, stride 2: one channel
    from 14 x 14 to 28 x 28, single model 6.9 -> 4.2 ms with one thread and 2.9 -> 2.2 ms with
    two; four stacked members 26.3 -> 18.8 ms and 14.9 -> 8.2 ms. Three channels at 32 x 32,
    or one at 64 x 64 with two threads, were as fast or slower, so they keep the convolution.
    """
    one_channel = channels == 1 and pixels <= ONE_CHANNEL_PIXELS
    return is_small(device, pixels, channels) or (device.type == "cpu" and one_channel)


def _padding(layer: nn.ConvTranspose2d) -> tuple[int, int]:
    """A transposed convolution's (h, w) padding (PyTorch types it as possibly a string, which
    only ordinary convolutions accept)."""
    if isinstance(layer.padding, str):
        raise TypeError(f"a transposed convolution has no padding={layer.padding!r}")
    return layer.padding[0], layer.padding[-1]


def transposed_output_size(
    h: int,
    w: int,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
) -> tuple[int, int]:
    """(H_out, W_out) of a transposed convolution on an (H, W) input (PyTorch's formula,
    dilation 1); each setting is an (h, w) pair."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, padding, output_padding
    return (h - 1) * sh - 2 * ph + kh + oh, (w - 1) * sw - 2 * pw + kw + ow


def fold_transposed(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)`` (dilation 1,
    one group) as one matrix product and ``F.fold``: (B, Cin, H, W) -> (B, Cout, H_out, W_out).

    Every input pixel's Cin values times the (Cin, Cout * kh * kw) weight give its kh x kw
    patch of the output; ``F.fold`` adds the overlapping patches into place (col2im). In the
    channels-last layout (``model.layout``) the product reads ``x`` without a copy.
    """
    h, w = x.shape[-2:]
    c_out, kh, kw = weight.shape[1:]
    h_out, w_out = transposed_output_size(h, w, (kh, kw), stride, padding, output_padding)
    cols = torch.matmul(x.flatten(2).transpose(1, 2), weight.flatten(1))
    y = F.fold(cols.transpose(1, 2), (h_out, w_out), (kh, kw), padding=padding, stride=stride)
    return y if bias is None else y + bias.view(1, c_out, 1, 1)


class FoldConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same checkpoint keys) that writes small images
    by one matrix product and ``F.fold`` (:func:`fold_transposed`) where
    :func:`fold_writes_faster`: (B, Cin, H, W) -> (B, Cout, H_out, W_out)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        plain = output_size is not None or self.groups != 1 or self.dilation != (1, 1)
        if plain or x.dim() != 4 or self.padding_mode != "zeros":
            return super().forward(x, output_size)
        h, w = x.shape[-2:]
        h_out, w_out = transposed_output_size(
            h, w, self.kernel_size, self.stride, _padding(self), self.output_padding
        )
        if not fold_writes_faster(x.device, h_out * w_out, self.weight.shape[1]):
            return super().forward(x, output_size)
        (sh, sw), (ph, pw), (oh, ow) = self.stride, _padding(self), self.output_padding
        return fold_transposed(x, self.weight, self.bias, (sh, sw), (ph, pw), (oh, ow))
