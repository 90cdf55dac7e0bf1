"""MNIST and Fashion-MNIST from their original IDX files (plain or ``.gz``).

IDX (LeCun's format): a 4-byte big-endian magic ``00 00 <dtype> <ndim>``, ``ndim`` big-endian
uint32 sizes, then the values in row-major order. Both datasets only use dtype 0x08 (uint8):
images are ``idx3`` (N, 28, 28), labels ``idx1`` (N,).

The four files are looked for, in this order, in ``<root>/MNIST/raw`` (``FashionMNIST/raw``:
torchvision's layout), ``<root>/mnist`` (``fashion_mnist`` or ``fashion-mnist``), ``<root>``
itself and, for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package). With ``data.download=true`` torchvision fetches them.
Each file may be plain or ``.gz``; the plain one is preferred, and a damaged plain one (an
extraction that stopped half way) gives way to the ``.gz`` beside it. When no folder holds all
four, the message (or the note, when Debian's copy is used instead) names the files a folder
under ``data.root`` lacks.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch

from vaesweep.config import DataConfig
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Folders outside ``data.root`` searched last; a module constant so tests can empty it.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

#: The mean pixel (on [0, 1]) of each official training set, as published with it (the
#: normalisation constants torchvision's examples use). Both sets use the same file names, so
#: a set found in ``<root>`` itself is told apart by its content: MNIST's is 0.1307,
#: Fashion-MNIST's 0.2860.
MEAN_PIXEL = {"mnist": 0.1307, "fashion_mnist": 0.2860}
#: Only a full official training set is judged; a user's own subset keeps its name.
OFFICIAL_TRAIN = 60_000
_UINT8 = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
#: Start of the note that says the system copy was used instead of data.root (printed).
FALLBACK_NOTE = "data.root="


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Read one uint8 IDX file with ``ndim`` dimensions; UserError naming the file if corrupt."""
    try:
        # Compressed or not by content, not name: a browser may have unpacked a .gz download
        # and kept its name, or a copy may be gzip under the plain name.
        with path.open("rb") as raw:
            packed = raw.read(2) == _GZIP_MAGIC
        with gzip.open(path, "rb") if packed else path.open("rb") as f:
            data = f.read()
    # gzip.BadGzipFile and CRC errors are OSErrors, truncation an EOFError, a damaged deflate
    # stream a zlib.error.
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path}: {e}; delete it and fetch it again") from e
    header = 4 + 4 * ndim
    zero, dtype, dims = struct.unpack(">HBB", data[:4]) if len(data) >= 4 else (-1, -1, -1)
    if zero != 0 or dtype != _UINT8 or dims != ndim:
        raise UserError(
            f"{path} is not a uint8 IDX file with {ndim} dimension(s) "
            f"(magic 0x{data[:4].hex()}, expected 0x0000080{ndim}); is it the right file?"
        )
    if len(data) < header:
        raise UserError(f"{path} is truncated: {len(data)} bytes, less than its header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = 1
    for d in shape:
        size *= d
    if len(data) - header != size:
        raise UserError(
            f"{path} is truncated or corrupt: header says {shape} = {size} bytes of data, "
            f"the file has {len(data) - header}; delete it and fetch it again"
        )
    if size == 0:
        raise UserError(
            f"{path} holds no data (shape {shape}): an empty split cannot be trained or "
            "evaluated; delete it and fetch it again"
        )
    # bytearray: torch.frombuffer wants a writable buffer.
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(shape)


def _find_file(folder: Path, name: str) -> Path | None:
    # Prefer the uncompressed file: torchvision keeps both and it is faster to read.
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_files(folders: list[Path]) -> dict[str, Path] | None:
    for folder in folders:
        found = {key: _find_file(folder, name) for key, name in FILES.items()}
        if all(found.values()):
            return {key: path for key, path in found.items() if path is not None}
    return None


def _what_is_missing(folders: list[Path]) -> tuple[str, bool]:
    """Which files the fullest of ``folders`` lacks (and True), or that none holds any (and
    False): what a message about a set not found says."""
    held = [[n for n in FILES.values() if _find_file(f, n)] for f in folders]
    most = max(range(len(folders)), key=lambda i: len(held[i]))
    if not held[most]:
        listed = ", ".join(str(f) for f in folders)
        return f"none of {listed} holds any of its IDX files", False
    lacks = [n for n in FILES.values() if n not in held[most]]
    return (
        f"{folders[most]} lacks {' and '.join(lacks)} (plain or .gz; it holds the other "
        f"{len(held[most])})"
    ), True


def _read_idx_or_gz(path: Path, ndim: int, notes: list[str]) -> torch.Tensor:
    """``path``, or the ``.gz`` beside it when the plain file is damaged (half extracted)."""
    try:
        return read_idx(path, ndim)
    except UserError as e:
        packed = path.with_name(f"{path.name}.gz")
        if path.suffix == ".gz" or not packed.is_file():
            raise
        try:
            data = read_idx(packed, ndim)
        except UserError:
            raise e from None
        notes.append(f"{e.args[0].split(';')[0]}; read {packed.name} beside it instead")
        return data


def _read_split(images_path: Path, labels_path: Path, notes: list[str]) -> ImageSet:
    images = _read_idx_or_gz(images_path, 3, notes)
    labels = _read_idx_or_gz(labels_path, 1, notes).long()
    if len(images) != len(labels):
        raise UserError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    return ImageSet(images.unsqueeze(1).contiguous(), labels)


def _download(name: str, root: Path, folders: list[Path], dataset_class: str) -> None:
    from torchvision import datasets  # imported here: it takes seconds

    try:
        getattr(datasets, dataset_class)(str(root), train=True, download=True)
    except Exception as e:  # any failure (offline, proxy, checksum) means the same to the user
        looked = ", ".join(str(f) for f in folders)
        raise UserError(
            f"downloading {name} with torchvision failed ({e}); are you offline? "
            f"Looked for the IDX files in: {looked}"
        ) from e


def _load(cfg: DataConfig, name: str, dataset_class: str, subdirs: tuple[str, ...]) -> RawDataset:
    root = Path(cfg.root).expanduser()
    folders = [root / dataset_class / "raw", *(root / s for s in subdirs), root]
    folders += SYSTEM_DIRS[name]
    notes: list[str] = []
    while True:
        found = _find_files(folders)
        if found is None and cfg.download:
            _download(name, root, folders, dataset_class)
            found = _find_files(folders)
        if found is None:
            looked = ", ".join(str(f) for f in folders)
            files = f"the IDX files ({', '.join(FILES.values())}, optionally .gz)"
            other_set = [n for n in notes if n.startswith(FALLBACK_NOTE)]
            if other_set:
                raise UserError(
                    f"{other_set[-1]}; nor is {name} under {looked}: put {files} there or "
                    "pass data.download=true"
                )
            missing, partial = _what_is_missing(folders)
            put = "put them there" if partial else f"put {files} in one of them"
            raise UserError(f"{name} not found: {missing}; {put} or pass data.download=true")
        train = _read_split(found["train_images"], found["train_labels"], notes)
        flat = found["train_images"].parent == root
        other, mean = _other_set(name, train) if flat else (None, 0.0)
        if other is None:
            break
        notes.append(
            f"{FALLBACK_NOTE}{cfg.root} holds {other}'s training set (mean pixel {mean:.4f}; "
            f"{other}'s is {MEAN_PIXEL[other]:.4f}, {name}'s {MEAN_PIXEL[name]:.4f}), not "
            f"{name}'s: the "
            f"two share file names, so keep each in its own folder ({root / dataset_class}/raw)"
        )
        folders = [f for f in folders if f != root]
    test = _read_split(found["test_images"], found["test_labels"], notes)
    source = str(found["train_images"].parent)
    notes.append(f"{name} IDX files from {source}")
    said = any(n.startswith(FALLBACK_NOTE) for n in notes)  # the root held the other set
    if found["train_images"].parent in SYSTEM_DIRS[name] and not said:
        # The user pointed somewhere else: say what was missing there, and what was used.
        mine = [f for f in folders if f not in SYSTEM_DIRS[name]]
        notes.insert(
            0, f"{FALLBACK_NOTE}{cfg.root}: {_what_is_missing(mine)[0]}; using {source} instead"
        )
    return RawDataset(train, test, source=source, notes=notes)


def _mean_pixel(images: ImageSet) -> float:
    return float(images.images.sum(dtype=torch.int64)) / (images.images.numel() * 255)


def _other_set(name: str, train: ImageSet) -> tuple[str | None, float]:
    """The other dataset when ``train`` is the other's official training set, and the mean
    pixel that says so (0.0 when ``train`` is not an official-size set)."""
    if len(train) != OFFICIAL_TRAIN:
        return None, 0.0
    mean = _mean_pixel(train)
    nearest = min(MEAN_PIXEL, key=lambda k: abs(MEAN_PIXEL[k] - mean))
    return (nearest if nearest != name else None), mean


def load_mnist(cfg: DataConfig) -> RawDataset:
    return _load(cfg, "mnist", "MNIST", ("mnist",))


def load_fashion_mnist(cfg: DataConfig) -> RawDataset:
    return _load(cfg, "fashion_mnist", "FashionMNIST", ("fashion_mnist", "fashion-mnist"))
