"""Factor datasets: the dSprites grid and renderer, the original npz layout, and data=shapes."""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vaesweep.config import DataConfig
from vaesweep.data.dsprites import SIZES, VALUES, DSpritesRenderer, dsprites_grid, load_dsprites
from vaesweep.data.dsprites_npz import FILE_NAME, load_npz
from vaesweep.data.registry import load_splits
from vaesweep.data.shapes import COLOURS, EXTENTS, ShapesRenderer, load_shapes
from vaesweep.data.sprites import EXTENT, draw_stamps, supersampling
from vaesweep.errors import UserError


@pytest.fixture(scope="module")
def r64() -> DSpritesRenderer:
    return DSpritesRenderer(64)


def sprites(shape: int, scale: int, orient: int, x: int = 15, y: int = 15) -> np.ndarray:
    return np.array([[shape, scale, orient, x, y]])


def area(images: torch.Tensor) -> np.ndarray:
    return (images > 0).flatten(1).sum(1).numpy()


def centroid(image: torch.Tensor) -> tuple[float, float]:
    rows, cols = np.nonzero(image[0].numpy())
    return float(rows.mean()), float(cols.mean())


def test_grid_is_the_published_one() -> None:
    grid = dsprites_grid()
    assert grid.sizes == (3, 6, 40, 32, 32) and grid.total == 737_280
    # posY fastest; the colour factor (one value) dropped, as disentanglement_lib does.
    assert grid.bases.tolist() == [245_760, 40_960, 1_024, 32, 1]
    assert np.allclose(grid.values[1], np.linspace(0.5, 1, 6))
    assert np.isclose(grid.values[2][1], 2 * np.pi / 39) and np.isclose(
        grid.values[2][-1], 2 * np.pi
    )
    flat = np.array([0, 1, 31, 32, 737_279, 123_456])
    assert (grid.flat_index(grid.classes_of(flat)) == flat).all()
    assert grid.classes_of(np.array([737_279])).tolist() == [[2, 5, 39, 31, 31]]


def test_images_are_binary_and_inside_the_canvas(r64: DSpritesRenderer) -> None:
    # Every shape, scale and orientation at the four extreme positions.
    base = dsprites_grid().all_classes()[:: 32 * 32][:, :3]  # (720, 3)
    corners = [(0, 0), (0, 31), (31, 0), (31, 31)]
    classes = np.concatenate([np.c_[base, np.full((720, 2), c)] for c in corners])
    images = r64(classes)
    assert images.shape == (2880, 1, 64, 64) and images.dtype == torch.uint8
    assert set(torch.unique(images).tolist()) == {0, 255}
    edges = torch.cat(
        [images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1
    )
    assert edges.max() == 0  # nothing touches the border, so nothing is cut off
    # The stamp holds the whole sprite: its border is empty too.
    s = r64.stamps
    assert s[:, 0].max() == s[:, -1].max() == s[:, :, 0].max() == s[:, :, -1].max() == 0
    # Same sprite, any position: the same area.
    a = area(images).reshape(4, 720)
    assert (a == a[0]).all()


def test_areas_follow_scale_and_shape(r64: DSpritesRenderer) -> None:
    side = EXTENT * 64  # the square's side at scale 1, in pixels
    scales = np.linspace(0.5, 1, 6)
    areas = np.array([[area(r64(sprites(s, k, 0)))[0] for k in range(6)] for s in range(3)])
    assert (np.diff(areas, axis=1) > 0).all()  # monotone in scale
    expected = np.outer([1.0, np.pi / 8, 3.662 / 2.278**2], (scales * side) ** 2)
    # The square root of the area (a length) within a pixel: edges snap to whole pixels.
    assert np.allclose(np.sqrt(areas), np.sqrt(expected), atol=1.0), areas / expected


def test_centroid_moves_one_pixel_per_position_step() -> None:
    for size, step in ((64, 1.0), (32, 0.5)):
        r = DSpritesRenderer(size)
        xs = np.array([centroid(r(sprites(0, 5, 0, x, 7))[0])[1] for x in range(32)])
        ys = np.array([centroid(r(sprites(0, 5, 0, 7, y))[0])[0] for y in range(32)])
        assert np.allclose(np.diff(xs), step, atol=0.05) and np.allclose(
            np.diff(ys), step, atol=0.05
        )
        assert abs((xs[0] + xs[-1]) / 2 + 0.5 - size / 2) < 0.6  # centred on the canvas


def test_rotation_symmetries() -> None:
    theta = np.array([0.3, 0.3 + np.pi / 2, 0.3 + np.pi, 0.3 + 3 * np.pi / 2])
    phases = np.array([0])
    for shape, period in ((0, 1), (1, 2)):  # square: every 90°; ellipse: every 180°
        stamps = draw_stamps(np.full(4, shape), np.ones(4), theta, phases, 64)[:, 0, 0]
        same = [(stamps[0] != stamps[i]).sum() for i in range(0, 4, period)]
        assert max(same) <= 2, same
    ellipse = draw_stamps(np.ones(2, int), np.ones(2), theta[:2], phases, 64)[:, 0, 0]
    heart = draw_stamps(np.full(2, 2), np.ones(2), theta[[0, 2]], phases, 64)[:, 0, 0]
    assert (ellipse[0] != ellipse[1]).sum() > 50  # a quarter turn changes the ellipse
    assert (heart[0] != heart[1]).sum() > 50  # a half turn changes the heart


def test_orientation_0_and_2pi_render_alike(r64: DSpritesRenderer) -> None:
    for shape in range(3):
        a, b = r64(np.r_[sprites(shape, 5, 0), sprites(shape, 5, 39)])
        assert (a != b).sum() <= 2


def test_load_dsprites_limit_is_a_seeded_sample_of_the_grid(tmp_path: Path) -> None:
    cfg = DataConfig(name="dsprites", root=str(tmp_path), image_size=32, limit=500)
    raw = load_dsprites(cfg)
    again = load_dsprites(cfg)
    train = raw.train
    assert train.images.shape == (500, 1, 32, 32) and train.factors is not None
    assert torch.equal(train.factors, again.train.factors)
    assert len(torch.unique(train.factors[:, 0])) == 3  # not the first 500 (all squares)
    assert raw.grid is not None and raw.grid.complete
    assert torch.equal(raw.grid.render(train.factors[:20].numpy()), train.images[:20])
    assert (train.labels == train.factors[:, 0]).all()


def _stamp_by_phase(shape: int, scale: float, angle: float, py: int, px: int, size: int):
    """One stamp (W, W) bool the direct way: its own f x f sub-pixel samples for this phase."""
    from vaesweep.data.sprites import _inside, stamp_half

    f, half = supersampling(size), stamp_half(size)
    w = 2 * half + 1
    extent = np.float32(scale * EXTENT * size)
    sub = (np.arange(w)[:, None] - half + (np.arange(f)[None, :] + 0.5) / f).astype(np.float32)
    dx = (sub - np.float32(px / f)).reshape(1, 1, w, f) / extent
    dy = -(sub - np.float32(py / f)).reshape(w, f, 1, 1) / extent
    c, s = np.cos(np.float32(angle)), np.sin(np.float32(angle))
    inside = _inside(shape, c * dx + s * dy, -s * dx + c * dy)  # (W, f, W, f)
    return inside.mean(axis=(1, 3)) >= 0.5


@pytest.mark.parametrize("size", [16, 24, 48])
def test_stamps_are_each_phase_rasterised_on_its_own(size: int) -> None:
    """Every phase's stamp is cut from one fine raster per sprite (P x P times fewer tests: a
    24 px renderer took 20 s, now under 1 s); each must equal the stamp rasterised for its
    phase alone, pixel for pixel."""
    r = DSpritesRenderer(size)
    rng = np.random.default_rng(size)
    phases = np.unique(r.phase_index, return_index=True)[1]  # a position of each phase
    f = supersampling(size)
    centre = (size * f) // 4 + np.arange(SIZES[3]) * (size * f // 64)
    for _ in range(12):
        shape, scale, orient = (int(rng.integers(s)) for s in SIZES[:3])
        iy, ix = (int(i) for i in rng.choice(phases, 2))
        sprite = (shape * SIZES[1] + scale) * SIZES[2] + orient
        p = r.n_phases
        stamp = r.stamps[(sprite * p + r.phase_index[iy]) * p + r.phase_index[ix]] > 0
        value, angle = float(VALUES[1][scale]), float(VALUES[2][orient])
        direct = _stamp_by_phase(shape, value, angle, centre[iy] % f, centre[ix] % f, size)
        assert np.array_equal(stamp, direct), (shape, scale, orient, iy, ix)


@pytest.mark.parametrize("size", [16, 24])
def test_small_sizes_render_whole_sprites(size: int) -> None:
    # At 16 and 24 px the stamps' blank margin overhangs the canvas for the outermost
    # positions: it is cut, the sprites are not (every image has its stamp's pixel count).
    r = DSpritesRenderer(size)
    base = dsprites_grid().all_classes()[:: 32 * 32][:, :3]  # (720, 3)
    corners = [(0, 0), (0, 31), (31, 0), (31, 31), (15, 16)]
    classes = np.concatenate([np.c_[base, np.full((720, 2), c)] for c in corners])
    images = r(classes)
    assert images.shape == (3600, 1, size, size)
    assert set(torch.unique(images).tolist()) == {0, 255}
    stamp_id = classes[:, 0] * 240 + classes[:, 1] * 40 + classes[:, 2]
    p = r.n_phases
    stamp_id = (stamp_id * p + r.phase_index[classes[:, 4]]) * p + r.phase_index[classes[:, 3]]
    stamp_area = (r.stamps[stamp_id] > 0).reshape(len(classes), -1).sum(1)
    assert (area(images) == stamp_area).all() and stamp_area.min() > 0


@pytest.mark.parametrize("size", [8, 20])
def test_dsprites_size_must_be_a_multiple_of_8_from_16(tmp_path: Path, size: int) -> None:
    with pytest.raises(UserError, match="multiples of 8 pixels from 16"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path), image_size=size, limit=10))


def write_npz(path: Path, sizes: tuple[int, ...], drop: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small npz in the original file's layout (uint8 {0,1} imgs, float64 values, int64
    classes, a pickled metadata dict), over the first ``sizes`` classes of each factor."""
    grid_classes = np.stack(np.meshgrid(*(np.arange(s) for s in sizes), indexing="ij"), -1)
    classes = grid_classes.reshape(-1, 6).astype(np.int64)
    imgs = (DSpritesRenderer(64)(classes[:, 1:]).numpy()[:, 0] // 255).astype(np.uint8)
    full = dsprites_grid()
    values = np.c_[np.ones(len(classes)), full.factor_values(classes[:, 1:])]
    rng = np.random.default_rng(0)
    keep = np.sort(rng.permutation(len(classes))[drop:]) if drop else np.arange(len(classes))
    order = rng.permutation(keep) if drop else keep
    metadata = np.array(pickle.dumps({"latents_sizes": sizes}), dtype=object)
    np.savez_compressed(
        path,
        imgs=imgs[order],
        latents_values=values[order],
        latents_classes=classes[order],
        metadata=metadata,
    )
    return classes[order], imgs[order]


def test_original_npz_is_used_when_present(tmp_path: Path) -> None:
    (tmp_path / "dsprites").mkdir()
    classes, imgs = write_npz(tmp_path / "dsprites" / FILE_NAME, (1, 3, 2, 3, 4, 4))
    raw = load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))
    grid = raw.grid
    assert raw.source.endswith(FILE_NAME) and grid is not None
    assert grid.sizes == (3, 2, 3, 4, 4) and grid.complete
    assert np.allclose(grid.values[1], [0.5, 0.6]) and grid.values[0] == (1.0, 2.0, 3.0)
    assert raw.train.images.shape == (288, 1, 64, 64) and raw.train.images.max() == 255
    assert torch.equal(raw.train.factors, torch.from_numpy(classes[:, 1:]))
    # Looking up chosen factors returns the file's image for them.
    pick = classes[[5, 100, 287], 1:]
    assert torch.equal(grid.render(pick)[:, 0] // 255, torch.from_numpy(imgs[[5, 100, 287]]))


def test_partial_npz_trains_and_samples_only_present_combinations(tmp_path: Path) -> None:
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4), drop=40)
    raw = load_npz(tmp_path / FILE_NAME, DataConfig(name="dsprites", root=str(tmp_path)))
    grid = raw.grid
    assert grid is not None and not grid.complete and len(grid.present) == 248
    drawn = grid.flat_index(grid.sample_factors(2000, np.random.default_rng(0)))
    assert set(drawn.tolist()) <= set(grid.present.tolist())
    assert any("skipped" in note for note in raw.notes)


def test_broken_npz_is_one_clear_error(tmp_path: Path) -> None:
    np.savez(tmp_path / FILE_NAME, imgs=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(UserError, match="lacks latents_values"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))
    (tmp_path / FILE_NAME).write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def test_npz_with_a_damaged_deflate_stream_is_one_clear_error(tmp_path: Path) -> None:
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4))
    with zipfile.ZipFile(tmp_path / FILE_NAME) as z:
        info = z.getinfo("imgs.npy")
    data = bytearray((tmp_path / FILE_NAME).read_bytes())
    # The member's data follows its 30-byte local header, name and extra field.
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + 2 : start + 6] = bytes(b ^ 0x5A for b in data[start + 2 : start + 6])
    (tmp_path / FILE_NAME).write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"cannot read .*{FILE_NAME}"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def rewrite_imgs(path: Path, dtype: type, scale: float = 1.0) -> np.ndarray:
    """The npz at ``path`` with its imgs (uint8 0/1) as ``dtype`` times ``scale``."""
    with np.load(path) as npz:
        imgs, values, classes = npz["imgs"], npz["latents_values"], npz["latents_classes"]
    np.savez(
        path,
        imgs=(imgs * scale).astype(dtype),
        latents_values=values,
        latents_classes=classes,
    )
    return imgs


@pytest.mark.parametrize("dtype", [np.bool_, np.float32, np.int64])
def test_npz_binary_imgs_of_other_dtypes_are_read(tmp_path: Path, dtype: type) -> None:
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4))
    imgs = rewrite_imgs(tmp_path / FILE_NAME, dtype)
    raw = load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))
    assert raw.train.images.dtype == torch.uint8
    assert torch.equal(raw.train.images[:, 0], torch.from_numpy(imgs) * 255)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float32, 0.5), (np.int16, -1.0)])
def test_npz_imgs_that_are_not_binary_are_refused(
    tmp_path: Path, dtype: type, scale: float
) -> None:
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4))
    rewrite_imgs(tmp_path / FILE_NAME, dtype, scale)
    with pytest.raises(UserError, match=rf"imgs is {np.dtype(dtype)} with values"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def test_load_splits_keeps_factors_and_renders_at_the_run_size(tmp_path: Path) -> None:
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4))
    splits = load_splits(DataConfig(name="dsprites", root=str(tmp_path), image_size=32))
    assert splits.grid is not None and splits.train.factors is not None
    assert splits.val.factors is not None
    assert len(splits.train.factors) + len(splits.val.factors) == 288
    # The grid renders like the training images were prepared: resized to 32 px.
    row = splits.val.factors[:1].numpy()
    assert torch.equal(splits.grid.render(row), splits.val.images[:1])
    # Still binary, as the README promises (Bernoulli is exact): no antialiased grey edges.
    for images in (splits.train.images, splits.val.images, splits.grid.render(row)):
        assert set(images.unique().tolist()) == {0, 255}


def test_npz_with_a_damaged_class_index_is_one_clear_error(tmp_path: Path) -> None:
    """A latents_classes entry of 2**40 used to allocate an 8 TiB grid (a traceback)."""
    write_npz(tmp_path / FILE_NAME, (1, 3, 2, 3, 4, 4))
    with np.load(tmp_path / FILE_NAME) as npz:
        arrays = {k: npz[k] for k in ("imgs", "latents_values", "latents_classes")}
    arrays["latents_classes"][7, 4] = 2**40
    np.savez(tmp_path / FILE_NAME, **arrays)
    with pytest.raises(UserError, match=r"latents_classes spans a grid of .* for 288 images"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def test_shapes_dataset_factors() -> None:
    raw = load_shapes(DataConfig(name="shapes"))
    images, factors = raw.train.images, raw.train.factors
    assert images.shape == (1296, 3, 16, 16) and factors is not None
    assert set(torch.unique(images).tolist()) == {0, 255}
    grid = raw.grid
    assert grid is not None and grid.complete and grid.total == 1296
    assert torch.equal(factors, torch.from_numpy(grid.all_classes()))
    # Colour: the lit channels are the colour's; squares cover exactly side² pixels.
    lit = images.amax(dim=(2, 3)).numpy()
    assert (lit == COLOURS[factors[:, 2].numpy()]).all()
    squares = factors[:, 0] == 0
    sides = torch.tensor(EXTENTS)[factors[squares, 1]]
    assert (area(images[squares].amax(1, keepdim=True)) == (sides**2).numpy()).all()
    # Larger size class, larger area, for every shape.
    by_size = [area(images[factors[:, 1] == k].amax(1, keepdim=True)).mean() for k in range(3)]
    assert by_size[0] < by_size[1] < by_size[2]
    r = ShapesRenderer(32)
    assert r(grid.all_classes()[:4]).shape == (4, 3, 32, 32)


def test_shapes_positions_step_one_pixel() -> None:
    r = ShapesRenderer(16)
    xs = [centroid(r(np.array([[1, 1, 0, x, 2]]))[0].amax(0, keepdim=True))[1] for x in range(6)]
    assert np.allclose(np.diff(xs), 1.0)


def test_factor_dataset_configs_validate() -> None:
    assert DataConfig(name="dsprites").name == "dsprites"
    assert DataConfig(name="shapes").name == "shapes"
    assert SIZES == (3, 6, 40, 32, 32)
