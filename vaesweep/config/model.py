"""Schemas of the ``model`` config group (conf/model/*.yaml); consumed by :mod:`vaesweep.model`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaesweep.config.checks import finite_numbers, positive, require


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
    #: Number of stride-2 stages; None = halve until the feature map is at most 4 px.
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


ModelConfig = ConvConfig | MLPConfig

#: ``model=<option>`` (and ``model.arch``) -> schema.
MODEL_SCHEMAS: dict[str, type] = {"conv": ConvConfig, "mlp": MLPConfig}
