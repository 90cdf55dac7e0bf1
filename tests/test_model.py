"""Model shapes: the conv VAE adapts to any channel count and image size from 8 px up."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaesweep.config import ConvConfig, LossConfig, MLPConfig
from vaesweep.model import build_model
from vaesweep.model.conv import stage_sizes
from vaesweep.model.small_images import (
    FoldConvTranspose2d,
    fold_writes_faster,
    transposed_output_size,
)


@pytest.mark.parametrize(
    "shape",
    [
        (1, 8, 8),
        (1, 28, 28),
        (3, 32, 32),
        (3, 64, 64),
        (3, 128, 128),
        (1, 30, 30),
        (3, 17, 23),
        (4, 9, 9),
    ],
)
def test_conv_vae_reconstructs_the_input_shape(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(ConvConfig(latent_dim=5, width=4, hidden_dim=16), LossConfig(), shape)
    x = torch.rand(3, *shape)
    params, mu, logvar = model(x, torch.randn(3, 5))
    assert params.shape == x.shape
    assert mu.shape == logvar.shape == (3, 5)
    assert model.reconstruct(x).min() >= 0 and model.reconstruct(x).max() <= 1
    assert model.sample(torch.randn(2, 5)).shape == (2, *shape)


def test_stage_sizes() -> None:
    assert stage_sizes(28, None) == [28, 14, 7, 3]
    assert stage_sizes(8, None) == [8, 4]
    assert stage_sizes(128, None) == [128, 64, 32, 16, 8, 4]
    assert stage_sizes(64, 2) == [64, 32, 16]
    with pytest.raises(ValueError):
        stage_sizes(8, 4)


def test_widths_double_up_to_the_cap() -> None:
    model = build_model(ConvConfig(width=16, max_width=48), LossConfig(), (3, 64, 64))
    convs = [m for m in model.encoder.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 48, 48]


def test_mlp_vae_and_reparameterisation_gradients() -> None:
    model = build_model(MLPConfig(latent_dim=3, hidden=[20]), LossConfig(), (1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    mu, logvar = model.encode(x)
    eps = torch.randn(4, 3)
    z = model.reparameterize(mu, logvar, eps)
    assert torch.allclose(z, mu + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_learned_likelihood_parameters_belong_to_the_model() -> None:
    model = build_model(ConvConfig(), LossConfig(likelihood="gaussian_learned"), (1, 8, 8))
    names = [n for n, _ in model.named_parameters()]
    assert "likelihood.log_sigma_scaled" in names


@pytest.mark.parametrize(
    ("c_in", "c_out", "side", "output_padding"),
    [
        (32, 1, 4, (0, 0)),
        (8, 3, 3, (1, 1)),
        (16, 4, 3, (1, 0)),
        (8, 1, 14, (0, 0)),
        (8, 1, 32, (0, 0)),
        (8, 3, 16, (0, 0)),
    ],
)
def test_fold_transposed_convolution_is_conv_transpose2d(
    c_in: int, c_out: int, side: int, output_padding: tuple[int, int]
) -> None:
    """The matmul + col2im path computes F.conv_transpose2d, values and all three gradients,
    on small outputs (it is taken) and larger ones (it is not)."""
    torch.manual_seed(0)
    layer = FoldConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=output_padding)
    x = torch.randn(5, c_in, side, side, requires_grad=True)
    h_out, w_out = transposed_output_size(
        side, side, layer.kernel_size, layer.stride, (1, 1), layer.output_padding
    )
    folds = fold_writes_faster(x.device, h_out * w_out, c_out)
    assert folds == (side <= 4 or (c_out == 1 and side <= 16))
    ours = layer(x)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, 2, 1, output_padding)
    assert ours.shape == ref.shape == (5, c_out, h_out, w_out)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    inputs = (x, layer.weight, layer.bias)
    g_ours = torch.autograd.grad(ours.square().sum(), inputs)
    g_ref = torch.autograd.grad(ref.square().sum(), inputs)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("shape", "cl"), [((1, 28, 28), True), ((3, 32, 32), True), ((1, 8, 8), False)]
)
def test_cpu_conv_models_compute_channels_last_and_decode_in_the_default_layout(
    shape: tuple[int, int, int], cl: bool
) -> None:
    """``place`` keeps a conv model's weights channels-last on the CPU above 8 x 8 px
    (``model.layout``); outputs and gradients equal the default layout's up to rounding, and
    the decoder's output is contiguous for the loss."""
    from vaesweep.model.layout import place

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    ref = build_model(ConvConfig(), LossConfig(), shape)
    model = build_model(ConvConfig(), LossConfig(), shape)
    model.load_state_dict(ref.state_dict())
    assert place(model, cpu, shape) is model
    weight = model.encoder.features[-2].weight  # the last convolution
    assert weight.is_contiguous() is (not cl)
    assert weight.is_contiguous(memory_format=torch.channels_last) or not cl
    x = torch.rand(5, *shape)
    outs = []
    for m in (ref, model):
        params, mu, logvar = m(x)
        (params.square().sum() + mu.sum() + logvar.sum()).backward()
        outs.append(
            (
                params,
                mu,
                logvar,
                weight.grad if m is model else ref.encoder.features[-2].weight.grad,
            )
        )
    assert outs[1][0].is_contiguous()
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
