"""The dataset loaders on tiny files written in each dataset's real on-disk format."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaesweep.config import DataConfig
from vaesweep.data import idx as idx_module
from vaesweep.data import load_splits
from vaesweep.data.celeba import load_celeba
from vaesweep.data.cifar import load_cifar10
from vaesweep.data.folder import load_folder
from vaesweep.data.idx import load_fashion_mnist, load_mnist, read_idx
from vaesweep.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never write into the real ~/.cache from a test.
    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "env-cache"))


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """Per the IDX spec: 00 00 08 <ndim>, big-endian uint32 dims, then uint8 data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(folder: Path, gz: bool, n_train: int = 10, n_test: int = 4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


@pytest.mark.parametrize(
    ("loader", "subdir", "gz"),
    [
        (load_mnist, "MNIST/raw", False),
        (load_mnist, "MNIST/raw", True),
        (load_mnist, "mnist", True),
        (load_mnist, ".", False),
        (load_fashion_mnist, "FashionMNIST/raw", True),
        (load_fashion_mnist, "fashion-mnist", False),
    ],
)
def test_idx_layouts_round_trip(tmp_path: Path, loader, subdir: str, gz: bool) -> None:
    arrays = write_mnist(tmp_path / subdir, gz)
    raw = loader(DataConfig(name="mnist", root=str(tmp_path)))
    assert raw.train.images.shape == (10, 1, 28, 28)
    assert raw.train.images.dtype == torch.uint8
    assert torch.equal(raw.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert raw.train.images[3, 0, 5, 17] == int(arrays["train-images-idx3-ubyte"][3, 5, 17])
    assert raw.train.labels.tolist() == list(range(10))
    assert raw.train.labels.dtype == torch.long
    assert raw.test is not None and raw.test.images.shape == (4, 1, 28, 28)
    assert raw.test.labels.tolist() == [3, 4, 5, 6]
    assert Path(raw.source) == tmp_path / subdir


def test_idx_prefers_torchvision_layout_and_expands_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist(tmp_path / "MNIST" / "raw", gz=False, n_train=6)
    write_mnist(tmp_path, gz=True, n_train=8)
    monkeypatch.setenv("HOME", str(tmp_path))
    raw = load_mnist(DataConfig(name="mnist", root="~"))
    assert len(raw.train) == 6
    assert raw.source == str(tmp_path / "MNIST" / "raw")


@pytest.mark.parametrize(
    "damage",
    ["magic", "truncated", "gzip", "deflate", "count", "empty"],
)
def test_idx_corrupt_files_name_the_file(tmp_path: Path, damage: str) -> None:
    write_mnist(tmp_path, gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    if damage == "magic":
        data = bytearray(images.read_bytes())
        data[2] = 0x0D  # float dtype code
        images.write_bytes(bytes(data))
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "gzip":
        images.unlink()
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    elif damage == "deflate":  # a valid gzip header over a damaged deflate stream: zlib.error
        images.unlink()
        write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.ones((10, 28, 28), np.uint8))
        data = bytearray((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
        data[12:16] = bytes(b ^ 0x5A for b in data[12:16])
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bytes(data))
    elif damage == "empty":  # a well-formed file with no images (and its labels file)
        write_idx(images, np.zeros((0, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    else:
        write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        load_mnist(DataConfig(name="mnist", root=str(tmp_path)))


def test_idx_compression_is_read_from_the_content_not_the_name(tmp_path: Path) -> None:
    """A browser that unpacks a .gz download keeps the name: the plain file under .gz was
    refused as 'not a gzipped file; delete it and fetch it again' (which gave the same file)."""
    arrays = write_mnist(tmp_path / "a", gz=False)
    (tmp_path / "a" / "train-images-idx3-ubyte").rename(
        tmp_path / "a" / "train-images-idx3-ubyte.gz"
    )
    raw = load_mnist(DataConfig(name="mnist", root=str(tmp_path / "a")))
    assert np.array_equal(raw.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    write_mnist(tmp_path / "b", gz=True)  # gzip content under the plain name
    (tmp_path / "b" / "t10k-images-idx3-ubyte.gz").rename(tmp_path / "b" / "t10k-images-idx3-ubyte")
    raw = load_mnist(DataConfig(name="mnist", root=str(tmp_path / "b")))
    assert raw.test is not None
    assert np.array_equal(raw.test.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])


def test_read_idx_rejects_wrong_rank(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8))
    with pytest.raises(UserError, match="3 dimension"):
        read_idx(tmp_path / "labels", 3)


def test_idx_not_found_lists_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(idx_module.SYSTEM_DIRS, "fashion_mnist", ())
    with pytest.raises(UserError, match=r"data\.download=true") as err:
        load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(tmp_path)))
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value)
    assert str(tmp_path / "fashion-mnist") in str(err.value)


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, **classes) -> None:
    # Stands in for torchvision: no network, and no seconds-long import.
    module = types.ModuleType("torchvision")
    module.datasets = types.SimpleNamespace(**classes)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", module)


def test_idx_download_failure_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(root: str, train: bool, download: bool) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    fake_torchvision(monkeypatch, MNIST=offline)
    with pytest.raises(UserError, match="offline") as err:
        load_mnist(DataConfig(name="mnist", root=str(tmp_path), download=True))
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)


def test_idx_download_then_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fetch(root: str, train: bool, download: bool) -> None:
        calls.append(root)
        write_mnist(Path(root) / "MNIST" / "raw", gz=True)

    fake_torchvision(monkeypatch, MNIST=fetch)
    raw = load_mnist(DataConfig(name="mnist", root=str(tmp_path), download=True))
    assert calls == [str(tmp_path)] and len(raw.train) == 10


def test_load_splits_mnist_converts(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw", gz=True, n_train=20)
    cfg = DataConfig(name="mnist", root=str(tmp_path), image_size=32, channels=3, val_fraction=0.25)
    splits = load_splits(cfg)
    assert splits.train.images.shape == (15, 3, 32, 32)
    assert splits.val.images.shape == (5, 3, 32, 32)
    assert splits.test is not None and splits.test.images.shape == (4, 3, 32, 32)
    assert torch.equal(splits.train.images[:, 0], splits.train.images[:, 2])


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian dataset-fashion-mnist missing")
def test_real_fashion_mnist_from_debian(tmp_path: Path) -> None:
    # An empty root: the loader must fall back to the Debian package's folder.
    raw = load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(tmp_path)))
    assert raw.source == str(DEBIAN_FASHION)
    assert raw.train.images.shape == (60000, 1, 28, 28)
    assert raw.test is not None and raw.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(raw.train.labels).tolist() == [6000] * 10
    assert torch.bincount(raw.test.labels).tolist() == [1000] * 10
    assert raw.train.images.max() == 255 and raw.train.images.min() == 0


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian dataset-fashion-mnist missing")
def test_a_flat_root_holding_the_other_set_is_told_apart_by_its_content(tmp_path: Path) -> None:
    """MNIST and Fashion-MNIST share file names, and <root> itself is searched for both:
    data=mnist trained on Fashion-MNIST (and the reverse) without a word. The real Fashion-MNIST
    files, copied flat, are refused as MNIST; MNIST-like files, flat, are passed over for
    Fashion-MNIST's own copy."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in DEBIAN_FASHION.glob("*-ubyte.gz"):
        (flat / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match=r"holds fashion_mnist's training set .* not mnist's"):
        load_mnist(DataConfig(name="mnist", root=str(flat)))
    assert load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(flat))).source == str(flat)

    # 60,000 images with MNIST's mean pixel (0.1307): mostly black, strokes of white.
    digits = tmp_path / "digits"
    write_mnist(digits, gz=False, n_train=10, n_test=4)
    strokes = np.zeros((60_000, 28, 28), dtype=np.uint8)
    strokes[:, 10:14, 6:22] = 255
    strokes[:, 4:24, 12:14] = 255  # 100 of 784 pixels: mean 0.1276
    write_idx(digits / "train-images-idx3-ubyte", strokes)
    write_idx(digits / "train-labels-idx1-ubyte", np.arange(60_000) % 10)
    raw = load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(digits)))
    assert raw.source == str(DEBIAN_FASHION)
    assert any("holds mnist's training set" in n for n in raw.notes)
    assert load_mnist(DataConfig(name="mnist", root=str(digits))).source == str(digits)


# --- CIFAR-10 --------------------------------------------------------------------------------


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batch(seed: int, n: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(x) for x in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar(folder: Path) -> dict[str, dict]:
    folder.mkdir(parents=True)
    batches = {name: cifar_batch(seed) for seed, name in enumerate(CIFAR_BATCHES)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}))
    return batches


def check_cifar(raw, batches: dict[str, dict]) -> None:
    assert raw.train.images.shape == (15, 3, 32, 32)
    assert raw.test is not None and raw.test.images.shape == (3, 3, 32, 32)
    row = batches["data_batch_2"][b"data"][1]
    # Image 4 = batch 2, row 1; its green plane starts at byte 1024, row-major.
    assert raw.train.images[4, 1, 7, 9] == row[1024 + 7 * 32 + 9]
    assert raw.train.images[4, 2, 31, 0] == row[2048 + 31 * 32]
    expected = [label for n in CIFAR_BATCHES[:5] for label in batches[n][b"labels"]]
    assert raw.train.labels.tolist() == expected
    assert raw.test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar_folder(tmp_path: Path) -> None:
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    raw = load_cifar10(DataConfig(name="cifar10", root=str(tmp_path)))
    check_cifar(raw, batches)


@pytest.mark.parametrize("mode", ["w:gz", "w"])
def test_cifar_tar_gz_read_without_unpacking(tmp_path: Path, mode: str) -> None:
    """Also a plain tar under the .tar.gz name (a browser's automatic gunzip): read by content."""
    batches = write_cifar(tmp_path / "staging" / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", mode) as tar:
        tar.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    raw = load_cifar10(DataConfig(name="cifar10", root=str(tmp_path)))
    check_cifar(raw, batches)
    assert raw.source.endswith("cifar-10-python.tar.gz")
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cifar_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DataConfig(name="cifar10", root=str(tmp_path))
    with pytest.raises(UserError, match="cifar-10-batches-py"):
        load_cifar10(cfg)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        load_cifar10(cfg)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="data_batch_3 missing"):
        load_cifar10(cfg)

    def offline(root: str, train: bool, download: bool) -> None:
        raise OSError("no route to host")

    fake_torchvision(monkeypatch, CIFAR10=offline)
    empty = tmp_path / "empty"
    with pytest.raises(UserError, match="offline"):
        load_cifar10(DataConfig(name="cifar10", root=str(empty), download=True))


# --- image folders ---------------------------------------------------------------------------


def solid(mode: str, size: tuple[int, int], colour) -> Image.Image:
    return Image.new(mode, size, colour)


def make_image_folder(root: Path) -> None:
    for sub in ("birds", "cats", "dogs/nested"):
        (root / sub).mkdir(parents=True)
    solid("RGB", (17, 53), (10, 20, 30)).save(root / "birds" / "f_odd.png")
    (root / "birds" / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(300))
    solid("RGB", (40, 30), (255, 0, 0)).save(root / "cats" / "a_red.PNG")
    solid("L", (20, 20), 100).save(root / "cats" / "b_gray.png")
    solid("RGBA", (24, 24), (0, 0, 255, 0)).save(root / "dogs" / "c_clear.png")
    palette = solid("P", (16, 16), 3)
    palette.putpalette([0, 0, 0] * 3 + [10, 200, 30] + [0, 0, 0] * 252)
    palette.save(root / "dogs" / "d_palette.gif")
    solid("RGB", (64, 48), (0, 255, 0)).save(root / "dogs" / "nested" / "e.jpg", quality=95)
    (root / "readme.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"ignored")


def folder_cfg(path: Path, cache: Path, **kw) -> DataConfig:
    return DataConfig(name="folder", path=str(path), cache_dir=str(cache), **kw)


def test_folder_decodes_labels_and_skips(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs")
    raw = load_folder(folder_cfg(tmp_path / "imgs", tmp_path / "cache", image_size=16))
    images = raw.train.images
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    # Sorted: birds/f_odd, cats/a_red, cats/b_gray, dogs/c_clear, dogs/d_palette, dogs/nested/e
    assert raw.train.labels.tolist() == [0, 1, 1, 2, 2, 2]
    colours = [images[i, :, 8, 8].tolist() for i in range(5)]
    assert colours == [[10, 20, 30], [255, 0, 0], [100, 100, 100], [255, 255, 255], [10, 200, 30]]
    assert (images[:5] == images[:5, :, :1, :1]).all()  # solid colours stay solid
    jpeg = images[5].int()
    assert (jpeg[1] >= 250).all() and (jpeg[0] <= 5).all() and (jpeg[2] <= 5).all()
    assert raw.test is None and raw.source == str((tmp_path / "imgs").resolve())
    assert "skipped 1 unreadable files: birds/corrupt.jpg" in raw.notes
    assert any("3 classes from subfolders: birds, cats, dogs" in n for n in raw.notes)


def test_folder_cache_hit_and_invalidation(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs")
    cfg = folder_cfg(tmp_path / "imgs", tmp_path / "cache", image_size=16)
    first = load_folder(cfg)
    assert any(n.startswith("decoded 6 images") for n in first.notes)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1

    second = load_folder(cfg)
    assert any("from the cache" in n for n in second.notes)
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.train.labels, second.train.labels)
    assert "skipped 1 unreadable files: birds/corrupt.jpg" in second.notes

    red = tmp_path / "imgs" / "cats" / "a_red.PNG"
    stat = red.stat()
    os.utime(red, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = load_folder(cfg)
    assert not any("from the cache" in n for n in touched.notes)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # the stale cache is gone

    solid("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "imgs" / "cats" / "z_new.png")
    added = load_folder(cfg)
    assert not any("from the cache" in n for n in added.notes)
    assert len(added.train) == 7

    other_size = load_folder(folder_cfg(tmp_path / "imgs", tmp_path / "cache", image_size=8))
    assert other_size.train.images.shape == (7, 3, 8, 8)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # one per size


def test_pickled_caches_of_older_versions_are_removed_and_nothing_else(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs")
    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / "imgs-0123456789ab-0123456789abcdef.pt"  # 0.1's pickled cache of this folder
    kept = [
        cache / "other-0123456789ab-0123456789abcdef.pt",  # another folder's: its own run
        cache / "imgs-model.pt",  # not a cache's name
        cache / "imgs-0123456789ab-0123456789abcdef.pt.bak",
    ]
    for path in (old, *kept):
        path.write_bytes(b"\x80\x04 a pickle")
    load_folder(folder_cfg(tmp_path / "imgs", cache, image_size=16))
    assert not old.exists() and all(p.exists() for p in kept)
    assert len(list(cache.glob("*.safetensors"))) == 1


def test_folder_damaged_or_unwritable_cache(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs")
    cfg = folder_cfg(tmp_path / "imgs", tmp_path / "cache", image_size=16)
    load_folder(cfg)
    (cache_file,) = (tmp_path / "cache").glob("*.safetensors")
    cache_file.write_bytes(b"garbage")
    again = load_folder(cfg)
    assert any(n.startswith("decoded 6 images") for n in again.notes)

    (tmp_path / "a_file").write_text("")
    blocked = folder_cfg(tmp_path / "imgs", tmp_path / "a_file" / "cache", image_size=16)
    raw = load_folder(blocked)
    assert len(raw.train) == 6 and any("not cached" in n for n in raw.notes)


def test_folder_flat_default_size_and_env_cache(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        solid("RGB", (70, 90), (i * 50, 0, 0)).save(flat / f"{i}.webp", lossless=True)
    raw = load_folder(DataConfig(name="folder", path=str(flat)))
    assert raw.train.labels.tolist() == [-1, -1, -1]
    assert raw.train.images.shape == (3, 3, 64, 64)
    assert raw.train.images[2, 0, 10, 10] == 100
    assert any("image_size not set" in n for n in raw.notes)
    assert len(list((tmp_path / "env-cache" / "folders").glob("flat-*.safetensors"))) == 1


def test_load_splits_folder_grayscale(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "imgs")
    cfg = folder_cfg(
        tmp_path / "imgs", tmp_path / "cache", image_size=12, channels=1, val_fraction=0.5
    )
    splits = load_splits(cfg)
    assert splits.train.images.shape == (3, 1, 12, 12)
    assert splits.val.images.shape == (3, 1, 12, 12)
    assert splits.test is None
    gray = torch.cat([splits.train.images, splits.val.images])[:, 0, 6, 6].sort().values
    # ITU-R 601 luma of the solid colours: (10, 20, 30) -> 18, red -> 76, grey 100 stays.
    assert gray.tolist()[:3] == [18, 76, 100]


def test_folder_scales_float_and_32bit_tiffs(tmp_path: Path) -> None:
    # Mode F is read as intensities in [0, 1], mode I on the 16-bit scale; both clipped.
    root = tmp_path / "tiffs"
    root.mkdir()
    values = {"f_over": 3.0, "f_quarter": 0.25, "f_nan": float("nan")}
    for name, value in values.items():
        Image.fromarray(np.full((10, 10), value, np.float32), "F").save(root / f"{name}.tif")
    for name, number in {"i_big": 10**6, "i_half": 32768, "i_neg": -7}.items():
        Image.fromarray(np.full((10, 10), number, np.int32), "I").save(root / f"{name}.tiff")
    raw = load_folder(folder_cfg(root, tmp_path / "cache", image_size=8, channels=1))
    assert raw.train.images.shape == (6, 1, 8, 8)
    # Sorted: f_nan, f_over, f_quarter, i_big, i_half, i_neg
    assert raw.train.images[:, 0, 4, 4].tolist() == [0, 255, 64, 255, 128, 0]


def test_folder_follows_symlinked_subfolders_once(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    solid("RGB", (8, 8), (0, 0, 255)).save(elsewhere / "blue.png")
    root = tmp_path / "imgs"
    (root / "reds").mkdir(parents=True)
    solid("RGB", (8, 8), (255, 0, 0)).save(root / "reds" / "red.png")
    (root / "blues").symlink_to(elsewhere, target_is_directory=True)
    (root / "reds" / "loop").symlink_to(root, target_is_directory=True)  # a link loop
    (root / "reds" / "again").symlink_to(root / "reds", target_is_directory=True)
    raw = load_folder(folder_cfg(root, tmp_path / "cache", image_size=8))
    assert raw.train.images[:, :, 4, 4].tolist() == [[0, 0, 255], [255, 0, 0]]
    assert raw.train.labels.tolist() == [0, 1]  # blues, reds: each image once


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file names must be UTF-8")
def test_folder_notes_and_log_write_names_that_are_not_utf8(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Python keeps such bytes as lone surrogates, which a UTF-8 log file or stream refuses.
    root = tmp_path / "imgs"
    cafe = root / os.fsdecode(b"caf\xe9")
    cafe.mkdir(parents=True)
    solid("RGB", (8, 8), (1, 2, 3)).save(cafe / "good.png")
    (root / os.fsdecode(b"bro\xefken.jpg")).write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="vaesweep.data.image_files"):
        raw = load_folder(folder_cfg(root, tmp_path / "cache", image_size=8))
    assert len(raw.train) == 1
    assert "skipped 1 unreadable files: bro\\xefken.jpg" in raw.notes
    assert any("1 classes from subfolders: caf\\xe9" in n for n in raw.notes)
    for line in [*raw.notes, *caplog.messages]:
        line.encode("utf-8")  # what writing train.log does; raised on a surrogate
    assert any("bro\\xefken.jpg" in m for m in caplog.messages)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_folder(folder_cfg(tmp_path / "missing", tmp_path / "cache"))
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(UserError, match="is a file"):
        load_folder(folder_cfg(tmp_path / "file.png", tmp_path / "cache"))
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="no images"):
        load_folder(folder_cfg(empty, tmp_path / "cache"))
    (empty / "sub" / "broken.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(UserError, match=r"broken\.png"):
        load_folder(folder_cfg(empty, tmp_path / "cache"))


def test_folder_images_too_large_are_named_with_their_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 182 Mpx museum scan was skipped as "unreadable" by Pillow's bomb check, and a 95 Mpx
    one printed Pillow's raw warning. The limit is vaesweep's own, counted after JPEG's reduced
    decoding; an image over it is named with its size (here the limit is 1,000 px)."""
    from vaesweep.data import image_files

    monkeypatch.setattr(image_files, "MAX_PIXELS", 1000)
    folder = tmp_path / "scans"
    folder.mkdir()
    solid("RGB", (40, 30), (255, 0, 0)).save(folder / "big.png")  # 1,200 px
    solid("RGB", (64, 64), (0, 255, 0)).save(folder / "big.jpg", quality=95)  # decodes at 8x8
    solid("RGB", (20, 20), (0, 0, 255)).save(folder / "small.png")
    raw = load_folder(folder_cfg(folder, tmp_path / "cache", image_size=8))
    assert len(raw.train.images) == 2
    expected = (
        "skipped 1 images over 0 Mpx, too large to decode (shrink them first): big.png (40x30)"
    )
    assert expected in raw.notes
    assert "unreadable" not in " ".join(raw.notes)
    assert any("big.png (40x30)" in r.getMessage() for r in caplog.records)
    # The cache keeps the reason.
    again = load_folder(folder_cfg(folder, tmp_path / "cache", image_size=8))
    assert expected in again.notes
    # Nothing decodes: the error says why, once (no separate warning line before it).
    (folder / "big.jpg").unlink()
    (folder / "small.png").unlink()
    caplog.clear()
    with pytest.raises(UserError, match=r"none of the 1 image files .* big\.png \(40x30\)$"):
        load_folder(folder_cfg(folder, tmp_path / "cache", image_size=8))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


# --- CelebA ----------------------------------------------------------------------------------


def write_faces(folder: Path, n: int = 6) -> None:
    # A 148x148 green "face" centred on a red 178x218 background: only the crop keeps it all.
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        img = solid("RGB", (178, 218), (255, 0, 0))
        img.paste((0, 255, 0), (15, 35, 163, 183))
        img.save(folder / f"{i:06d}.jpg", quality=95, subsampling=0)


def test_celeba_partition_and_crop(tmp_path: Path) -> None:
    faces = tmp_path / "celeba" / "img_align_celeba"
    write_faces(faces)
    lines = ["000001.jpg 0", "000002.jpg 2", "000003.jpg 0", "000004.jpg 1", "000005.jpg 2"]
    (faces.parent / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    cache = str(tmp_path / "cache")
    cfg = DataConfig(name="celeba", root=str(tmp_path), image_size=16, cache_dir=cache)
    raw = load_celeba(cfg)
    assert raw.train.images.shape == (4, 3, 16, 16)  # 000001, 3, 4 and unlisted 6
    assert raw.test is not None and raw.test.images.shape == (2, 3, 16, 16)
    assert raw.train.labels.tolist() == [-1] * 4
    face = raw.train.images[0].int()
    # Cropped: even the corners are green; uncropped, the red background would show there.
    assert face[1, 1:-1, 1:-1].min() > 200 and face[0, 1:-1, 1:-1].max() < 60
    assert any("1 images not in list_eval_partition.txt" in n for n in raw.notes)
    assert any("from the cache" in n for n in load_celeba(cfg).notes)


@pytest.mark.parametrize("place", ["Eval", "img_align_celeba"])
def test_celeba_partition_file_in_eval_or_among_the_images(tmp_path: Path, place: str) -> None:
    """The official Google Drive keeps list_eval_partition.txt in Eval/; some unpack it among
    the images. It was missed there, and the note said it was not next to the images."""
    faces = tmp_path / "celeba" / "img_align_celeba"
    write_faces(faces, n=4)
    (faces.parent / place).mkdir(exist_ok=True)
    lines = ["000001.jpg 0", "000002.jpg 2", "000003.jpg 0", "000004.jpg 0"]
    (faces.parent / place / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    cfg = DataConfig(name="celeba", root=str(tmp_path), image_size=8, cache_dir=str(tmp_path / "c"))
    raw = load_celeba(cfg)
    assert raw.test is not None and len(raw.test.images) == 1 and len(raw.train.images) == 3


def test_celeba_kaggle_layout_default_size(tmp_path: Path) -> None:
    write_faces(tmp_path / "img_align_celeba" / "img_align_celeba", n=4)
    csv = "image_id,partition\n000001.jpg,0\n000002.jpg,1\n000003.jpg,0\n000004.jpg,2\n"
    (tmp_path / "list_eval_partition.csv").write_text(csv)
    raw = load_celeba(DataConfig(name="celeba", root=str(tmp_path), channels=1))
    assert raw.train.images.shape == (3, 1, 64, 64)
    assert raw.test is not None and len(raw.test) == 1
    assert any("image_size not set" in n for n in raw.notes)


def test_celeba_without_partition_and_missing(tmp_path: Path) -> None:
    write_faces(tmp_path / "img_align_celeba", n=3)
    raw = load_celeba(DataConfig(name="celeba", root=str(tmp_path), image_size=8))
    assert len(raw.train) == 3 and raw.test is None
    with pytest.raises(UserError, match="img_align_celeba"):
        load_celeba(DataConfig(name="celeba", root=str(tmp_path / "nothing")))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_celeba_partition_file_in_utf16_or_with_a_bom(tmp_path: Path, encoding: str) -> None:
    # What Windows editors save: UTF-16 with a BOM ("Unicode"), or UTF-8 with a BOM.
    write_faces(tmp_path / "img_align_celeba", n=3)
    text = "000001.jpg 0\r\n000002.jpg 2\r\n000003.jpg 1\r\n"
    (tmp_path / "list_eval_partition.txt").write_bytes(text.encode(encoding))
    raw = load_celeba(DataConfig(name="celeba", root=str(tmp_path), image_size=8))
    assert len(raw.train) == 2 and raw.test is not None and len(raw.test) == 1
    assert not any("not in list_eval_partition" in n for n in raw.notes)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("# partição\n000001.jpg 0\n".encode("latin-1"), "byte 0xe7 at offset 7"),
        ("000001.jpg 0\n".encode("utf-16-le"), "NUL bytes"),
    ],
    ids=["latin-1", "utf-16-no-bom"],
)
def test_celeba_partition_file_not_utf8_is_one_line(
    tmp_path: Path, content: bytes, why: str
) -> None:
    write_faces(tmp_path / "img_align_celeba", n=1)
    (tmp_path / "list_eval_partition.csv").write_bytes(content)
    with pytest.raises(UserError, match=r"list_eval_partition\.csv is not UTF-8") as err:
        load_celeba(DataConfig(name="celeba", root=str(tmp_path), image_size=8))
    assert why in str(err.value) and "save it as UTF-8" in str(err.value)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file names must be UTF-8")
def test_celeba_messages_write_names_that_are_not_utf8(tmp_path: Path) -> None:
    """CelebA's messages quoted a data.root with bytes that are not UTF-8 as lone surrogates
    (a UnicodeEncodeError on a UTF-8 stream or log; \\udcff where written at all)."""
    root = tmp_path / os.fsdecode(b"caf\xe9")
    with pytest.raises(UserError) as missing:
        load_celeba(DataConfig(name="celeba", root=str(root)))
    write_faces(root / "img_align_celeba", n=1)
    partition = root / "list_eval_partition.txt"
    partition.write_bytes("000001.jpg 0\n".encode("utf-16-le"))
    with pytest.raises(UserError) as not_utf8:
        load_celeba(DataConfig(name="celeba", root=str(root), image_size=8))
    partition.write_text("000001.jpg 7\n")
    with pytest.raises(UserError) as bad_line:
        load_celeba(DataConfig(name="celeba", root=str(root), image_size=8))
    for err in (missing, not_utf8, bad_line):
        message = str(err.value)
        message.encode("utf-8")  # what stderr under a UTF-8 locale and train.log do
        assert "caf\\xe9" in message, message
    assert "caf\\xe9/list_eval_partition.txt is not UTF-8" in str(not_utf8.value)
    assert "caf\\xe9/list_eval_partition.txt:1: expected" in str(bad_line.value)
