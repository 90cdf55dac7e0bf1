"""Inputs from a user audit that hung, allocated terabytes, were not found or failed late: a FIFO
in an image folder, an npz header declaring a huge array, a browser-renamed dSprites file, and
config values `vaesweep show` accepted."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaesweep.config import DataConfig
from vaesweep.data import npz_check
from vaesweep.data.dsprites import load_dsprites
from vaesweep.data.dsprites_npz import FILE_NAME, find_npz
from vaesweep.data.folder import load_folder
from vaesweep.data.imageset import ImageSet, split_train_val
from vaesweep.errors import ConfigError, UserError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "env-cache"))


# --- a FIFO in an image folder ---------------------------------------------------------------


class _Unblocker:
    """Opens ``fifo`` for writing (and closes it) whenever a reader waits on it: a loader that
    opens the FIFO then sees end-of-file instead of hanging the test forever."""

    def __init__(self, fifo: Path) -> None:
        self.fifo, self.stop = fifo, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))

    def __enter__(self) -> _Unblocker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_folder_fifo_is_skipped_without_being_opened(tmp_path: Path) -> None:
    """A FIFO named like an image hung the loader forever (Pillow waited for a writer)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (12, 12), (40 * i, 0, 0)).save(folder / f"a{i}.png")
    os.mkfifo(folder / "pipe.png")
    cfg = DataConfig(name="folder", path=str(folder), image_size=8)
    expected = "skipped 1 paths that are not regular files, never read: pipe.png (a FIFO)"
    with _Unblocker(folder / "pipe.png"):
        raw = load_folder(cfg)
        assert len(raw.train) == 2
        assert expected in raw.notes
        assert "unreadable" not in " ".join(raw.notes)
        again = load_folder(cfg)  # from the cache, with the same reason
        assert any("from the cache" in n for n in again.notes) and expected in again.notes
        for f in ("a0.png", "a1.png"):
            (folder / f).unlink()
        with pytest.raises(UserError, match=r"none of the 1 image files .*pipe\.png \(a FIFO\)$"):
            load_folder(cfg)


# --- an npz whose header declares a huge array -----------------------------------------------


def npy(shape: tuple[int, ...], dtype: str, data: bytes) -> bytes:
    """An .npy file whose header declares ``shape`` whatever ``data`` holds."""
    out = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + data


def write_dsprites_npz(
    path: Path, imgs_shape: tuple[int, ...] | None = None, imgs_npy: bytes | None = None
) -> None:
    """Four images in the original file's layout; ``imgs_shape`` overrides what imgs declares,
    ``imgs_npy`` replaces its whole member."""
    n = 4
    classes = np.zeros((n, 6), np.int64)
    classes[:, 4], classes[:, 5] = [0, 0, 1, 1], [0, 1, 0, 1]
    imgs = np.zeros((n, 64, 64), np.uint8)
    imgs[:, 20:40, 20:40] = 1
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("imgs.npy", imgs_npy or npy(imgs_shape or imgs.shape, "|u1", imgs.tobytes()))
        z.writestr("latents_values.npy", npy((n, 6), "<f8", classes.astype("<f8").tobytes()))
        z.writestr("latents_classes.npy", npy((n, 6), "<i8", classes.astype("<i8").tobytes()))


def test_npz_declaring_a_huge_array_is_refused_before_allocating(tmp_path: Path) -> None:
    """imgs declaring (10**7, 2048, 2048) made numpy allocate 38 TiB: a MemoryError traceback."""
    write_dsprites_npz(tmp_path / FILE_NAME, imgs_shape=(10**7, 2048, 2048))
    with pytest.raises(UserError, match=r"imgs declares shape .* = 38\.1 TiB, but the file") as e:
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))
    assert "\n" not in str(e.value)
    # Within memory but more than stored: refused the same way (numpy would read past the end).
    write_dsprites_npz(tmp_path / FILE_NAME, imgs_shape=(40, 64, 64))
    with pytest.raises(UserError, match=r"160\.0 KiB, but the file stores 16\.0 KiB"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def test_npz_larger_than_memory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dsprites_npz(tmp_path / FILE_NAME)
    assert len(load_dsprites(DataConfig(name="dsprites", root=str(tmp_path))).train) == 4
    monkeypatch.setattr(npz_check, "memory_bytes", lambda: 1000)
    with pytest.raises(UserError, match=r"more than this machine's 1000 bytes of memory"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


def test_npz_member_with_a_damaged_header_is_one_line(tmp_path: Path) -> None:
    """A header numpy cannot parse escaped as tokenize.TokenError: a traceback."""
    write_dsprites_npz(
        tmp_path / FILE_NAME, imgs_npy=b"\x93NUMPY\x01\x00\x10\x00{'descr': nonsense"
    )
    with pytest.raises(UserError, match=f"cannot read .*{FILE_NAME}"):
        load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))


# --- dSprites saved under a browser's numbered name ------------------------------------------


@pytest.mark.parametrize("name", [" (1)", "(2)"])
def test_dsprites_npz_under_a_browser_numbered_name_is_found(tmp_path: Path, name: str) -> None:
    renamed = tmp_path / FILE_NAME.replace(".npz", f"{name}.npz")
    write_dsprites_npz(renamed)
    raw = load_dsprites(DataConfig(name="dsprites", root=str(tmp_path)))
    assert raw.source == str(renamed) and len(raw.train) == 4


def test_dsprites_npz_choice_among_copies_is_fixed(tmp_path: Path) -> None:
    (tmp_path / "dsprites").mkdir()
    for name in (" (10)", " (2)", "(3)"):
        write_dsprites_npz(tmp_path / "dsprites" / FILE_NAME.replace(".npz", f"{name}.npz"))
    (tmp_path / "dsprites" / FILE_NAME.replace(".npz", " (1).npz")).mkdir()  # not a file
    (tmp_path / FILE_NAME.replace(".npz", " (1).npz.part")).write_bytes(b"")  # not the name
    assert find_npz(str(tmp_path)) == tmp_path / "dsprites" / FILE_NAME.replace(".npz", " (2).npz")
    write_dsprites_npz(tmp_path / "dsprites" / FILE_NAME)  # the real name wins
    assert find_npz(str(tmp_path)) == tmp_path / "dsprites" / FILE_NAME


# --- config values that failed only later ----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"val_fraction": 0.999}, r"data\.val_fraction=0\.999 is invalid: at most 0\.5"),
        ({"val_fraction": 0.51}, r"e\.g\. data\.val_fraction=0\.1$"),
        ({"image_size": 100000}, r"data\.image_size=100000 is invalid: must be at most 1024"),
    ],
)
def test_data_config_bounds(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(**override)


def test_data_config_bounds_keep_the_edges() -> None:
    assert DataConfig(val_fraction=0.5, image_size=1024).image_size == 1024


def test_split_leaving_no_training_image_is_a_user_error() -> None:
    """The split raised a bare ValueError (a traceback) when validation took every image."""
    images = ImageSet(
        torch.zeros((3, 1, 8, 8), dtype=torch.uint8), torch.zeros(3, dtype=torch.long)
    )
    with pytest.raises(UserError, match=r"holds out 3 of 3 images .* leaving none to train on"):
        split_train_val(images, 0.9, 0)
