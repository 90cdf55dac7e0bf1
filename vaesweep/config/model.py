"""Schemas of the ``model`` config group (conf/model/*.yaml); consumed by :mod:`vaesweep.model`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaesweep.config.checks import finite_numbers, positive, require
from vaesweep.config.data import MAX_IMAGE_SIZE

#: The deepest ``model.depth``: each stage halves the image, and images are at most
#: ``MAX_IMAGE_SIZE`` (1024 = 2**10) px. Whether a depth fits the data's own size is checked
#: once the data is loaded (:func:`vaesweep.model.fit.check_fits`).
MAX_DEPTH = MAX_IMAGE_SIZE.bit_length() - 1


@dataclass
class ConvConfig:
    """Convolutional encoder/decoder; adapts to any channel count and image size >= 8 px.

    Each stage halves the feature map (4x4 kernels, stride 2) and doubles the width up to
    ``max_width``; the decoder mirrors it with transposed convolutions.
    """

    arch: str = "conv"
    latent_dim: int = 16
    #: Channels of the first stage.
    width: int = 32
    max_width: int = 256
    #: Number of stride-2 stages; None = halve until the feature map is at most 4 px. Each
    #: stage needs a side of at least 2 px, so images of S px allow at most log2(S) stages
    #: (8 px digits: 3); deeper is refused before a run starts.
    depth: int | None = None
    #: Width of the fully connected layer between the conv features and the latent.
    hidden_dim: int = 256

    def __post_init__(self) -> None:
        finite_numbers(self, "model")
        require(self.arch == "conv", "model.arch", self.arch, "the conv schema needs arch=conv")
        positive("model.latent_dim", self.latent_dim)
        positive("model.width", self.width)
        positive("model.max_width", self.max_width)
        positive("model.depth", self.depth, allow_none=True)
        require(
            self.depth is None or self.depth <= MAX_DEPTH,
            "model.depth",
            self.depth,
            f"{self.depth} stride-2 stages need images of 2**{self.depth} px, but "
            f"data.image_size is at most {MAX_IMAGE_SIZE}: model.depth<={MAX_DEPTH}",
        )
        positive("model.hidden_dim", self.hidden_dim)


@dataclass
class MLPConfig:
    """Fully connected encoder/decoder on flattened images (the classic Kingma & Welling VAE)."""

    arch: str = "mlp"
    latent_dim: int = 16
    #: Hidden layer widths of the encoder; the decoder uses them in reverse.
    hidden: list[int] = field(default_factory=lambda: [512, 256])

    def __post_init__(self) -> None:
        finite_numbers(self, "model")
        require(self.arch == "mlp", "model.arch", self.arch, "the mlp schema needs arch=mlp")
        positive("model.latent_dim", self.latent_dim)
        require(
            len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
            "model.hidden",
            list(self.hidden),
            "must be a non-empty list of positive widths, e.g. [512,256]",
        )


@dataclass
class ResConvConfig:
    """Residual conv encoder/decoder with GroupNorm for colour images of 32-128 px.

    Stages halve the image until it is at most 4 px, each with ``blocks`` residual blocks;
    widths double per stage from ``width`` up to ``max_width``. ``latent_dim=None`` sizes the
    code to the image (C*H*W / 96 in [16, 512]: 128 at 64x64 RGB).
    """

    arch: str = "resconv"
    #: Dimensions of z; None = scale with the image (C*H*W / 96, clamped to [16, 512]).
    latent_dim: int | None = None
    #: Channels of the first stage (16: about the compute per image of ``conv`` at 64 px).
    width: int = 16
    max_width: int = 128
    #: Residual blocks per stage.
    blocks: int = 1
    #: GroupNorm groups (fewer when a width is not divisible by it).
    groups: int = 8

    def __post_init__(self) -> None:
        finite_numbers(self, "model")
        require(
            self.arch == "resconv", "model.arch", self.arch, "the resconv schema needs arch=resconv"
        )
        positive("model.latent_dim", self.latent_dim, allow_none=True)
        positive("model.width", self.width)
        positive("model.max_width", self.max_width)
        positive("model.blocks", self.blocks)
        positive("model.groups", self.groups)


ModelConfig = ConvConfig | MLPConfig | ResConvConfig

#: ``model=<option>`` (and ``model.arch``) -> schema.
MODEL_SCHEMAS: dict[str, type] = {"conv": ConvConfig, "mlp": MLPConfig, "resconv": ResConvConfig}
