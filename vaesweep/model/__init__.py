"""VAE models: conv, residual conv and MLP encoders/decoders around a likelihood."""

from __future__ import annotations

from vaesweep.config import ConvConfig, LossConfig, MLPConfig, ResConvConfig
from vaesweep.model.fit import check_fits
from vaesweep.model.vae import VAE
from vaesweep.objective.likelihoods import build_likelihood


def build_model(
    model_cfg: ConvConfig | MLPConfig | ResConvConfig,
    loss_cfg: LossConfig,
    shape: tuple[int, int, int],
    data_name: str | None = None,
) -> VAE:
    """The VAE for images of ``shape`` (C, H, W) of ``data_name`` (named in errors).

    Raises :class:`~vaesweep.errors.ConfigError` for settings that do not fit the images
    (:func:`~vaesweep.model.fit.check_fits`; the preflight has said so before any run).
    """
    from torch import nn

    check_fits(model_cfg, shape, data_name)

    encoder: nn.Module
    decoder: nn.Module
    if isinstance(model_cfg, ConvConfig):
        from vaesweep.model.conv import ConvDecoder, ConvEncoder

        encoder = ConvEncoder(model_cfg, shape)
        decoder = ConvDecoder(model_cfg, shape, encoder)
        latent_dim = model_cfg.latent_dim
    elif isinstance(model_cfg, ResConvConfig):
        from vaesweep.model.resconv import ResConvDecoder, ResConvEncoder

        encoder = ResConvEncoder(model_cfg, shape)
        decoder = ResConvDecoder(model_cfg, shape, encoder)
        latent_dim = encoder.latent_dim
    else:
        from vaesweep.model.mlp import MLPDecoder, MLPEncoder

        encoder = MLPEncoder(model_cfg, shape)
        decoder = MLPDecoder(model_cfg, shape)
        latent_dim = model_cfg.latent_dim
    likelihood = build_likelihood(loss_cfg, shape[0])
    return VAE(encoder, decoder, likelihood, latent_dim, shape)


__all__ = ["VAE", "build_model"]
