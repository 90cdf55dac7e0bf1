"""Colour images: the residual conv model, data=photos, and batch augmentation (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaesweep.bridge import compose as bridge
from vaesweep.config import DataConfig, LossConfig, ResConvConfig
from vaesweep.data.augment import Augment, augmented_unit
from vaesweep.data.photos import N_PER_PHOTO, load_photos
from vaesweep.data.registry import load_splits
from vaesweep.errors import UserError
from vaesweep.model import build_model
from vaesweep.model.resconv import ResBlock, auto_latent_dim


@pytest.mark.parametrize(
    ("shape", "latent"),
    [((1, 8, 8), 16), ((1, 28, 28), 16), ((3, 32, 32), 32), ((3, 64, 64), 128), ((3, 65, 47), 95)],
)
def test_resconv_maps_any_size_back_to_itself(shape: tuple[int, int, int], latent: int) -> None:
    model = build_model(ResConvConfig(), LossConfig(), shape)
    assert model.latent_dim == latent == auto_latent_dim(shape)
    x = torch.rand(3, *shape)
    params, mu, logvar = model(x, torch.randn(3, latent))
    assert params.shape == x.shape and mu.shape == logvar.shape == (3, latent)


def test_resconv_latent_size_scales_with_the_image_and_can_be_fixed() -> None:
    assert auto_latent_dim((3, 128, 128)) == 512 and auto_latent_dim((3, 256, 256)) == 512
    assert build_model(ResConvConfig(latent_dim=7), LossConfig(), (3, 32, 32)).latent_dim == 7


def test_residual_blocks_start_as_the_identity() -> None:
    block = ResBlock(16, groups=8)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), x)


def test_resconv_normalises_per_image_not_per_batch() -> None:
    # GroupNorm: an image's encoding does not depend on the other images of its batch.
    model = build_model(ResConvConfig(latent_dim=8), LossConfig(), (3, 16, 16)).eval()
    x = torch.rand(4, 3, 16, 16)
    mu_all, _ = model.encode(x)
    mu_one, _ = model.encode(x[:1])
    torch.testing.assert_close(mu_all[:1], mu_one, rtol=1e-5, atol=1e-5)


def test_resconv_composes_from_conf() -> None:
    cfg = bridge.compose(["model=resconv", "data=photos", "model.blocks=2"])
    assert isinstance(cfg.model, ResConvConfig)
    assert cfg.model.latent_dim is None and cfg.model.blocks == 2
    assert cfg.data.name == "photos" and cfg.data.image_size == 64


def test_photos_are_deterministic_cached_colour_crops(tmp_path: Path) -> None:
    cfg = DataConfig(name="photos", image_size=16, cache_dir=str(tmp_path))
    first = load_photos(cfg)
    images = first.train.images
    assert images.shape == (3 * N_PER_PHOTO, 3, 16, 16) and images.dtype == torch.uint8
    assert first.train.labels.bincount().tolist() == [N_PER_PHOTO] * 3
    assert "generated" in first.notes[0]
    (cached,) = tmp_path.glob("photos-16RGB-*.safetensors")
    second = load_photos(cfg)
    assert "from the cache" in second.notes[0]
    assert torch.equal(second.train.images, images)
    cached.unlink()  # generated again from the seed: the same images
    assert torch.equal(load_photos(cfg).train.images, images)
    # Real colour photographs: channels differ and the crops are not all alike.
    assert (images[:, 0].float() - images[:, 2].float()).abs().mean() > 5
    assert images.float().std(0).mean() > 20


def test_photos_split_and_grayscale(tmp_path: Path) -> None:
    splits = load_splits(
        DataConfig(name="photos", image_size=8, channels=1, cache_dir=str(tmp_path))
    )
    assert splits.shape == (1, 8, 8)
    assert (len(splits.train), len(splits.val)) == (810, 90)


def test_flip_only_mirrors_about_half_the_images_exactly() -> None:
    x = torch.rand(400, 3, 5, 7)
    out = Augment(flip=True)(x, torch.Generator().manual_seed(0))
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.equal(mirrored | (out == x).flatten(1).all(1), torch.ones(400, dtype=torch.bool))
    assert 150 < int(mirrored.sum()) < 250


def test_full_size_crop_is_the_identity_and_crops_zoom_in() -> None:
    x = torch.rand(8, 3, 16, 16)
    same = Augment(crop=1.0 - 1e-9)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-4, rtol=0)
    # A constant image stays constant (the crop never leaves the image) ...
    flat = torch.full((8, 1, 16, 16), 0.25)
    torch.testing.assert_close(Augment(True, 0.5)(flat, torch.Generator()), flat)
    # ... and a horizontal ramp cropped to half its side spans about half its range.
    ramp = torch.linspace(0, 1, 64).expand(4, 1, 64, 64)
    out = Augment(crop=0.5)(ramp.clone(), torch.Generator().manual_seed(1))
    span = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert torch.all(span > 0.4) and torch.all(span < 1.0)


def test_augmentation_is_seeded_and_varies_per_image() -> None:
    x = torch.rand(1, 3, 16, 16).expand(6, -1, -1, -1)
    aug = Augment(flip=True, crop=0.6)
    a = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(5)))
    assert len({tuple(img.flatten()[:20].tolist()) for img in a}) > 1


def test_augment_is_off_by_default_and_checked() -> None:
    assert Augment.from_config(DataConfig()) is None
    assert Augment.from_config(DataConfig(augment_crop=1.0)) is None
    assert Augment.from_config(DataConfig(augment_flip=True, augment_crop=0.8)) == Augment(
        True, 0.8
    )
    with pytest.raises(UserError, match=r"data\.augment_crop"):
        DataConfig(augment_crop=1.5)


def test_dynamic_binarisation_comes_after_the_augmentation() -> None:
    u8 = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    x = augmented_unit(u8, Augment(crop=0.7), "dynamic", torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.slow
def test_a_photos_run_with_resconv_and_augmentation(
    tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaesweep.run import run_job

    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "cache"))
    overrides = [o for o in tiny if not o.startswith(("model.", "data.limit"))]
    overrides += [
        "data=photos",
        "data.image_size=16",
        "data.limit=96",
        "data.augment_flip=true",
        "data.augment_crop=0.8",
        "model=resconv",
        "model.width=8",
        "model.max_width=16",
    ]
    summary = run_job(bridge.compose(overrides), tmp_path / "run")
    assert summary["status"] == "completed"
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["model"]["latent_dim"] == 16  # 3*16*16/96 = 8, raised to the minimum 16
    assert on_disk["config"]["data"]["augment_crop"] == 0.8
