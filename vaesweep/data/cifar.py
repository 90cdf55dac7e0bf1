"""CIFAR-10 (Krizhevsky 2009) from either official download, extracted or not.

* The "python version": ``<root>/cifar-10-batches-py`` (torchvision's layout) or
  ``<root>/cifar-10-python.tar.gz``; pickled batches, read by :mod:`vaesweep.data.cifar_pickle`.
* The "binary version": ``<root>/cifar-10-batches-bin`` or ``<root>/cifar-10-binary.tar.gz``;
  ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, each 10,000 records of
  one label byte (0..9) and 3,072 pixel bytes (the red, green and blue 32x32 planes,
  row-major). No pickle: nothing in the file is ever run.

An archive is read without unpacking it. A folder that lacks a batch or holds a damaged one (an
extraction that stopped half way) gives way to the complete archive beside it, with a note; with
no archive there, the message names the missing file. ``data.download=true`` lets torchvision
fetch the python version when neither version is there.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.cifar_pickle import read_pickled_batch
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError

#: One record of the binary version: a label byte, then 3 x 32 x 32 pixel bytes.
RECORD = 1 + 3 * 32 * 32


def read_binary_batch(raw: bytes, where: str) -> ImageSet:
    """One batch of the binary version (the bytes of ``where``) as images and labels."""
    if not raw or len(raw) % RECORD:
        raise UserError(
            f"{where} is not a CIFAR-10 binary batch: {len(raw):,} bytes is no whole number of "
            f"{RECORD}-byte records (a label byte and 3,072 pixel bytes); fetch it again"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    if int(records[:, 0].max()) > 9:
        raise UserError(
            f"{where} has labels up to {int(records[:, 0].max())}, not 0..9: it is no "
            "CIFAR-10 binary batch (CIFAR-100's records differ); fetch cifar-10-binary.tar.gz"
        )
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, torch.from_numpy(records[:, 0].astype(np.int64)))


@dataclass(frozen=True)
class Version:
    """One of the two official downloads: its folder, its archive, its files, their reader."""

    folder: str
    archive: str
    train: tuple[str, ...]
    test: str
    read: Callable[[bytes, str], ImageSet]

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test)


PYTHON = Version(
    "cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    read_pickled_batch,
)
BINARY = Version(
    "cifar-10-batches-bin",
    "cifar-10-binary.tar.gz",
    tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test_batch.bin",
    read_binary_batch,
)
VERSIONS = (PYTHON, BINARY)
Batches = tuple[list[ImageSet], ImageSet]


def _read_folder(folder: Path, version: Version) -> Batches:
    missing = [n for n in version.files if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder} is incomplete: {', '.join(missing)} missing")
    train = [version.read((folder / n).read_bytes(), str(folder / n)) for n in version.train]
    return train, version.read((folder / version.test).read_bytes(), str(folder / version.test))


def _read_archive(archive: Path, version: Version) -> Batches:
    wanted = {f"{version.folder}/{n}" for n in version.files}
    raw: dict[str, bytes] = {}
    try:
        # One pass over the members: a .tar.gz can only be read front to back cheaply.
        with tarfile.open(archive, "r:*") as tar:  # by content: gzip, or a plain tar
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        raw[member.name] = f.read()
    except (OSError, EOFError, tarfile.TarError) as e:
        raise UserError(f"cannot read {archive}: {e}; delete it and fetch it again") from e
    missing = sorted(wanted - raw.keys())
    if missing:
        raise UserError(f"{archive} lacks {', '.join(missing)}; is it {version.archive}?")

    def batch(n: str) -> ImageSet:
        return version.read(raw[f"{version.folder}/{n}"], f"{archive}:{version.folder}/{n}")

    return [batch(n) for n in version.train], batch(version.test)


def _read_version(root: Path, version: Version, notes: list[str]) -> tuple[Batches, Path] | None:
    """The batches of ``version`` from its folder, else from its archive; None if neither."""
    folder, archive = root / version.folder, root / version.archive
    if folder.is_dir():
        try:
            return _read_folder(folder, version), folder
        except UserError as e:
            if not archive.is_file():
                raise UserError(
                    f"{e}; extract {version.archive} into {root} again, or put the archive "
                    "there (it is read without extracting)"
                ) from None
            notes.append(f"{e}; read {archive} beside it instead")
    if archive.is_file():
        return _read_archive(archive, version), archive
    return None


def _download(root: Path, looked: str) -> None:
    from torchvision import datasets  # imported here: it takes seconds

    try:
        datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # any failure (offline, proxy, checksum) means the same to the user
        raise UserError(
            f"downloading cifar10 with torchvision failed ({e}); are you offline? "
            f"Looked for {looked}"
        ) from e


def load_cifar10(cfg: DataConfig) -> RawDataset:
    root = Path(cfg.root).expanduser()
    names = [n for v in VERSIONS for n in (v.folder, v.archive)]
    looked = f"{', '.join(str(root / n) for n in names[:-1])} and {root / names[-1]}"
    if cfg.download and not any((root / n).exists() for n in names):
        _download(root, looked)
    notes: list[str] = []
    errors: list[str] = []  # a version that is there but unusable: the other may do
    found = None
    for version in VERSIONS:
        try:
            found = _read_version(root, version, notes)
        except UserError as e:
            errors.append(str(e))
            continue
        if found is not None:
            break
    if found is None:
        if errors:
            raise UserError(errors[0])
        hint = ""
        if root.name in names:
            hint = f"; data.root must be the folder holding {root.name}: data.root={root.parent}"
        raise UserError(
            f"cifar10 not found: looked for {looked}; put the CIFAR-10 python or binary "
            f"version there or pass data.download=true{hint}"
        )
    (train, test), source = found
    notes += [f"{e}; read {source} instead" for e in errors]
    notes.append(f"cifar10 from {source}")
    images = torch.cat([b.images for b in train])
    labels = torch.cat([b.labels for b in train])
    return RawDataset(ImageSet(images, labels), test, source=str(source), notes=notes)
