"""Whether a model's settings fit the images it will train on, before anything is built.

The schemas check each setting on its own (:mod:`vaesweep.config.model`); how deep a conv
model may go depends on the images' size, which is known only once the data is loaded. The
preflight (:func:`vaesweep.run.assembly.preflight`) calls :func:`check_fits` with the data's
shape before a run directory exists, so ``model.depth=5`` on 8 px digits is one line, not a
failed run; :func:`vaesweep.model.build_model` calls it too, for every other way in.
"""

from __future__ import annotations

import itertools

from vaesweep.config import ConvConfig, LossConfig, MLPConfig, ResConvConfig
from vaesweep.errors import ConfigError


def max_stages(side: int) -> int:
    """Stride-2 stages (s -> floor(s / 2)) a side of ``side`` px allows, each on at least
    2 px: the largest d with 2**d <= side (8 px: 3 stages, 8 -> 4 -> 2 -> 1)."""
    return max(side, 1).bit_length() - 1


def check_fits(
    model_cfg: object, shape: tuple[int, int, int], data_name: str | None = None
) -> None:
    """Raise :class:`ConfigError` (one line: what is wrong, what would fit) unless a model
    with ``model_cfg`` can be built for images of ``shape`` (C, H, W) of ``data_name``.

    Only ``model.depth`` of ``model=conv`` depends on the image size: ``model.depth=null``
    and ``model=resconv`` halve until the map is at most 4 px, which any image of at least
    2 px allows, and ``model=mlp`` takes any size.
    """
    if not isinstance(model_cfg, ConvConfig) or model_cfg.depth is None:
        return
    _, height, width = shape
    side = min(height, width)
    depth = model_cfg.depth
    if depth <= max_stages(side):
        return
    need = 2**depth
    size = f"{side} px" if height == width else f"{height}x{width} px"
    images = f"data={data_name} images" if data_name else "the images"
    raise ConfigError(
        f"model.depth={depth} needs images of at least {need} px, but {images} "
        f"are {size}: use model.depth<={max_stages(side)} (or model.depth=null), "
        f"or data.image_size={need}"
    )


def parameter_floor(model_cfg: object, shape: tuple[int, int, int]) -> int:
    """A lower bound on the parameters of the model for images of ``shape`` (C, H, W), from
    its largest layers in plain integers: nothing is built, and no size overflows.

    :func:`vaesweep.run.assembly.check_memory` reads it before building the model on the meta
    device, so that ``model.latent_dim=10**20`` (beyond what torch can describe) or
    ``model.blocks=10**6`` (minutes to build) is refused at once.
    """
    if isinstance(model_cfg, ConvConfig):
        # Encoder Linear(n_feat, hidden) and Linear(hidden, 2M); decoder Linear(M, hidden)
        # and Linear(hidden, n_feat), with n_feat >= 1.
        return 3 * model_cfg.latent_dim * model_cfg.hidden_dim + 2 * model_cfg.hidden_dim
    if isinstance(model_cfg, MLPConfig):
        pixels = shape[0] * shape[1] * shape[2]
        encoder = [pixels, *model_cfg.hidden, 2 * model_cfg.latent_dim]
        decoder = [model_cfg.latent_dim, *reversed(model_cfg.hidden), pixels]
        return sum(a * b for s in (encoder, decoder) for a, b in itertools.pairwise(s))
    if isinstance(model_cfg, ResConvConfig):
        # The first stage's width c0 in `blocks` residual blocks (two 3x3 convolutions each)
        # in the encoder and again in the decoder; the heads hold at least M * c0 each.
        c0 = min(model_cfg.width, model_cfg.max_width)
        latent = model_cfg.latent_dim or 1
        return 2 * model_cfg.blocks * 2 * 9 * c0 * c0 + 3 * latent * c0
    return 0


def parameter_count(model_cfg: object, loss_cfg: LossConfig, shape: tuple[int, int, int]) -> int:
    """The parameters of the model :func:`vaesweep.model.build_model` would build for images
    of ``shape``: built on torch's meta device, which allocates nothing (milliseconds)."""
    import torch

    from vaesweep.model import build_model

    with torch.device("meta"):
        model = build_model(model_cfg, loss_cfg, shape)  # type: ignore[arg-type]
    return sum(p.numel() for p in model.parameters())
