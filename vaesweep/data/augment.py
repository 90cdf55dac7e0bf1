"""Random crops and horizontal flips of training batches, one batched tensor operation per batch.

For small folders (a few hundred images) each epoch can show slightly different views of the same
images: ``data.augment_flip`` mirrors each image left-right with probability 1/2, and
``data.augment_crop=s`` takes a random square crop whose side is a fraction in [s, 1] of the
image, at a random position, and resizes it back to the full size (bilinear). Both act on the
batch tensor already in memory: one ``affine_grid`` + ``grid_sample`` for the whole batch (or a
``torch.where`` for flips alone), never a Python loop over images. Only training batches are
augmented; the train/validation split and the validation images stay fixed, so validation
metrics of runs with and without augmentation compare the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vaesweep.config import DataConfig


@dataclass(frozen=True)
class Augment:
    """``flip``: mirror with probability 1/2; ``crop``: smallest crop side as a fraction (or None)."""

    flip: bool = False
    crop: float | None = None

    @classmethod
    def from_config(cls, cfg: DataConfig) -> Augment | None:
        """None when the config asks for no augmentation (the default)."""
        crop = cfg.augment_crop if cfg.augment_crop is not None and cfg.augment_crop < 1 else None
        return cls(cfg.augment_flip, crop) if cfg.augment_flip or crop is not None else None

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x (B, C, H, W) float -> augmented (B, C, H, W); random draws come from ``generator``."""
        return self.apply(x, self.draw(len(x), generator, x.device))

    def draw(
        self, b: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor | None:
        """The random part of augmenting ``b`` images, drawn from ``generator``: (b,) mirror
        flags for flips alone, (b, 2, 3) affine maps with a crop, None for neither. Draws of
        several generators concatenate into one :meth:`apply` (a stack's members)."""
        if self.crop is None:
            if not self.flip:
                return None
            return torch.rand(b, generator=generator, device=device) < 0.5
        # Output pixel (u, v) in [-1, 1]^2 reads input (s*u*f + tx, s*v + ty): a crop of side
        # fraction s centred at (tx, ty), mirrored when f = -1; |t| <= 1 - s keeps it inside.
        u = torch.rand(b, 3, generator=generator, device=device)
        side = self.crop + (1.0 - self.crop) * u[:, 0]
        tx = (2 * u[:, 1] - 1) * (1 - side)
        ty = (2 * u[:, 2] - 1) * (1 - side)
        sign = torch.ones(b, device=device)
        if self.flip:
            mirror = torch.rand(b, generator=generator, device=device) < 0.5
            sign = torch.where(mirror, -sign, sign)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0] = side * sign
        theta[:, 0, 2] = tx
        theta[:, 1, 1] = side
        theta[:, 1, 2] = ty
        return theta

    def apply(self, x: torch.Tensor, drawn: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W) float augmented by ``drawn`` (:meth:`draw` of B images)."""
        if drawn is None:
            return x
        b = len(x)
        if self.crop is None:
            return torch.where(drawn.view(b, 1, 1, 1), x.flip(-1), x)
        grid = F.affine_grid(drawn, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augmented_unit(
    images: torch.Tensor, augment: Augment, binarize: str, generator: torch.Generator | None
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> augmented pixels in [0, 1]; ``dynamic`` binarises after augmenting."""
    x = augment(images.to(torch.float32).mul_(1.0 / 255.0), generator)
    if binarize == "dynamic":
        x = torch.bernoulli(x.clamp_(0, 1), generator=generator)
    return x
