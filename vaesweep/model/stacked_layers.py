"""The layers of a stacked model: K single layers as one, with a leading member axis.

Linear layers become batched matrix products (``baddbmm`` over weights stored ``(K, in,
out)``); convolutions and transposed convolutions become grouped ones with one group per
member, or (``per_member``) run member by member with each member's kernel in the
channels-last layout (``model.layout``). Tiny images take an im2col / col2im path
(``model.small_images``). Inside conv stages activations are ``(B, K * C, H, W)``: member k
owns channels ``k*C .. (k+1)*C``, the layout grouped convolutions take. Each layer computes
for member k what the single layer it was stacked from computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vaesweep.model.small_images import (
    fold_transposed,
    fold_writes_faster,
    is_small,
    transposed_output_size,
)


def _stack(tensors: Sequence[torch.Tensor | None]) -> nn.Parameter:
    """One parameter (K, ...) from the members' tensors (the layers' weights or biases)."""
    if any(t is None for t in tensors):
        raise TypeError("cannot stack layers without a bias")
    return nn.Parameter(torch.stack([t.detach() for t in tensors if t is not None]).contiguous())


def _stack_channels_last(tensors: Sequence[torch.Tensor]) -> nn.Parameter:
    """One parameter (K, A, B, kh, kw) from K conv weights (A, B, kh, kw), each member's
    slice channels-last (memory order K, A, kh, kw, B), as the single model keeps them on
    the CPU (``model.layout``)."""
    first = tensors[0]
    a, b, kh, kw = first.shape
    out = torch.empty(len(tensors), a, kh, kw, b, dtype=first.dtype, device=first.device)
    out = out.permute(0, 1, 4, 2, 3)
    with torch.no_grad():
        for k, t in enumerate(tensors):
            out[k].copy_(t)
    return nn.Parameter(out)


def _pair(value: int | str | tuple[int, ...], what: str) -> tuple[int, int]:
    """A conv layer's (h, w) stride or padding; string paddings ('same') have no stacked form."""
    if isinstance(value, str):
        raise TypeError(f"cannot stack a convolution with {what}={value!r}")
    if isinstance(value, int):
        return value, value
    return value[0], value[-1]


class StackedLinear(nn.Module):
    """K ``nn.Linear``: (K, B, in) -> (K, B, out).

    The weight is stored transposed, (K, in, out), so that neither the product nor its
    gradient needs a transposed copy (measured 1.3x faster per stacked step than (K, out, in)
    on 2 CPU cores); :func:`member_slots` gives back the single model's (out, in) view.
    """

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stack([m.weight.t() for m in layers])
        self.bias = _stack([m.bias for m in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class StackedConv2d(nn.Module):
    """K ``nn.Conv2d`` as one grouped convolution: (B, K*Cin, H, W) -> (B, K*Cout, H', W');
    or, ``per_member``, one convolution per member (:meth:`member_forward`)."""

    def __init__(self, layers: Sequence[nn.Conv2d], per_member: bool = False) -> None:
        super().__init__()
        first = layers[0]
        self.stride = _pair(first.stride, "stride")
        self.padding = _pair(first.padding, "padding")
        stack = _stack_channels_last if per_member else _stack
        self.weight = stack([m.weight for m in layers])  # (K, Cout, Cin, kh, kw)
        self.bias = _stack([m.bias for m in layers])  # (K, Cout)

    def member_forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Member k's (B, Cin, H, W) -> its (B, Cout, H', W'), member by member."""
        weights, biases = self.weight.unbind(0), self.bias.unbind(0)
        return [
            F.conv2d(x, w, b, self.stride, self.padding) for x, w, b in zip(xs, weights, biases)
        ]

    #: ``grouped``: one grouped convolution; ``unfold``: im2col and one batched matmul;
    #: ``auto``: unfold on the CPU for the layer that reads tiny images (<= 8x8 px, <= 4
    #: channels), grouped otherwise. Measured on 2 CPU cores: unfold made the default digits
    #: stack's step 1.3x faster, but on 28x28 images every unfolded layer was slower.
    kernel = "auto"

    def _unfold(self, x: torch.Tensor) -> bool:
        if self.kernel != "auto":
            return self.kernel == "unfold"
        return is_small(x.device, x.shape[-2] * x.shape[-1], self.weight.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, c_out, c_in, kh, kw = self.weight.shape
        if not self._unfold(x):
            w = self.weight.flatten(0, 1)
            return F.conv2d(x, w, self.bias.flatten(), self.stride, self.padding, groups=k)
        b, _, h, w_px = x.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w_px + 2 * pw - kw) // sw + 1
        cols = F.unfold(x, (kh, kw), padding=self.padding, stride=self.stride)
        n = cols.shape[-1]  # (B, K*Cin*kh*kw, L), channel-major per member
        cols = cols.view(b, k, c_in * kh * kw, n).permute(1, 0, 3, 2).reshape(k, b * n, -1)
        y = torch.baddbmm(self.bias.unsqueeze(1), cols, self.weight.flatten(2).transpose(1, 2))
        return y.view(k, b, n, c_out).permute(1, 0, 3, 2).reshape(b, k * c_out, h_out, w_out)


class StackedConvTranspose2d(nn.Module):
    """K ``nn.ConvTranspose2d`` as one grouped transposed convolution; or, ``per_member``,
    one per member (:meth:`member_forward`)."""

    def __init__(self, layers: Sequence[nn.ConvTranspose2d], per_member: bool = False) -> None:
        super().__init__()
        first = layers[0]
        self.stride = _pair(first.stride, "stride")
        self.padding = _pair(first.padding, "padding")
        self.output_padding = _pair(first.output_padding, "output_padding")
        stack = _stack_channels_last if per_member else _stack
        self.weight = stack([m.weight for m in layers])  # (K, Cin, Cout, kh, kw)
        self.bias = _stack([m.bias for m in layers])  # (K, Cout)

    def member_forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Member k's (B, Cin, H, W) -> its (B, Cout, H_out, W_out), member by member, on
        the single model's path (``FoldConvTranspose2d``)."""
        h, w = xs[0].shape[-2:]  # every member's activations have one shape
        h_out, w_out = transposed_output_size(
            h, w, self.weight.shape[-2:], self.stride, self.padding, self.output_padding
        )
        conv = (
            fold_transposed
            if fold_writes_faster(xs[0].device, h_out * w_out, self.weight.shape[2])
            else F.conv_transpose2d
        )
        args = (self.stride, self.padding, self.output_padding)
        return [
            conv(x, wk, bk, *args)
            for x, wk, bk in zip(xs, self.weight.unbind(0), self.bias.unbind(0))
        ]

    #: ``grouped``: one grouped transposed convolution; ``fold``: one batched matmul and
    #: col2im; ``auto``: fold on the CPU where ``small_images.fold_writes_faster`` (tiny
    #: images, or one channel up to 32 x 32), grouped otherwise.
    kernel = "auto"

    def _fold(self, x: torch.Tensor, h_out: int, w_out: int) -> bool:
        if self.kernel != "auto":
            return self.kernel == "fold"
        return fold_writes_faster(x.device, h_out * w_out, self.weight.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, c_in, c_out, kh, kw = self.weight.shape
        b, _, h, w = x.shape
        h_out, w_out = transposed_output_size(
            h, w, (kh, kw), self.stride, self.padding, self.output_padding
        )
        if self._fold(x, h_out, w_out):
            xs = x.view(b, k, c_in, h * w).permute(1, 0, 3, 2).reshape(k, b * h * w, c_in)
            cols = torch.bmm(xs, self.weight.flatten(2))  # (K, B*L, Cout*kh*kw)
            cols = cols.view(k, b, h * w, -1).permute(1, 0, 3, 2).reshape(b, -1, h * w)
            y = F.fold(cols, (h_out, w_out), (kh, kw), padding=self.padding, stride=self.stride)
            return y + self.bias.view(1, k * c_out, 1, 1)
        return F.conv_transpose2d(
            x,
            self.weight.flatten(0, 1),
            self.bias.flatten(),
            self.stride,
            self.padding,
            self.output_padding,
            groups=k,
        )


class MemberFlatten(nn.Module):
    """Stands where the single encoder's ``nn.Flatten`` is: (B, K*C, h, w) -> (K, B, C*h*w)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.k, -1).transpose(0, 1)


def stack_sequential(seqs: Sequence[nn.Sequential], per_member: bool = False) -> nn.Sequential:
    """The stacked counterpart of K identical ``nn.Sequential``, child by child (same indices);
    ``per_member``: convolutions run member by member (:func:`members_forward`)."""
    out: list[nn.Module] = []
    for children in zip(*(list(s) for s in seqs)):
        first = children[0]
        if isinstance(first, nn.Linear):
            out.append(StackedLinear(children))
        elif isinstance(first, nn.Conv2d):
            out.append(StackedConv2d(children, per_member))
        elif isinstance(first, nn.ConvTranspose2d):
            out.append(StackedConvTranspose2d(children, per_member))
        elif isinstance(first, nn.Flatten):
            out.append(MemberFlatten(len(seqs)))
        elif isinstance(first, nn.SiLU):
            out.append(nn.SiLU())
        else:
            raise TypeError(f"cannot stack a {type(first).__name__}")
    return nn.Sequential(*out)


def members_forward(seq: nn.Sequential, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run a stacked conv stage member by member: member k's activations through its slice
    of every layer (the single model's kernels, in its channels-last layout)."""
    for layer in seq:
        if isinstance(layer, (StackedConv2d, StackedConvTranspose2d)):
            xs = layer.member_forward(xs)
        else:
            xs = [layer(x) for x in xs]
    return xs
