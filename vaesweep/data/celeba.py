"""CelebA aligned faces (Liu et al. 2015): ``img_align_celeba/*.jpg``, 178x218 RGB.

Read from ``<root>/celeba/img_align_celeba`` (torchvision's layout) or
``<root>/img_align_celeba``; Kaggle's zip, which nests ``img_align_celeba/img_align_celeba``, is
accepted too. ``list_eval_partition.txt`` (lines ``000001.jpg 0``; 0 train, 1 valid, 2 test) or
Kaggle's ``list_eval_partition.csv`` next to the image folder gives the official split: train =
partitions 0 and 1 (validation is carved from them like for every dataset), test = 2. Without
it, every image is training data.

Faces are center-cropped to 148x148 (the crop customary in VAE work on CelebA: it keeps the
face and drops most of the background) and resized to ``data.image_size`` (64 when unset).
Decoding 200k JPEGs takes a minute or more, so the result is cached like an image folder's (see
:mod:`vaesweep.data.folder`).
"""

from __future__ import annotations

import codecs
from pathlib import Path

import torch

from vaesweep.config import DataConfig
from vaesweep.data.folder import DEFAULT_SIZE
from vaesweep.data.image_files import DecodeSpec, decode_images
from vaesweep.data.imageset import ImageSet, RawDataset, labels_unknown
from vaesweep.errors import UserError, printable

IMAGES = "img_align_celeba"
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
FACE_CROP = 148
TEST_PARTITION = 2


def _find_images(root: Path) -> Path | None:
    for folder in (root / "celeba" / IMAGES, root / IMAGES):
        if (folder / IMAGES).is_dir() and not any(folder.glob("*.jpg")):
            folder = folder / IMAGES  # Kaggle's nesting
        if folder.is_dir() and any(folder.glob("*.jpg")):
            return folder
    return None


def _partition_text(path: Path) -> str:
    """The partition file's text: UTF-8 (a BOM is dropped) or, with its BOM, UTF-16 (what
    Windows tools save as "Unicode"); any other encoding is refused rather than guessed."""
    data = path.read_bytes()
    why = "NUL bytes (UTF-16 without a BOM?)"  # which UTF-8 would accept as text
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        if b"\0" not in data:
            return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        why = f"byte 0x{data[e.start]:02x} at offset {e.start}"
    raise UserError(f"{printable(path)} is not UTF-8 text ({why}); save it as UTF-8")


def _read_partitions(path: Path) -> dict[str, int]:
    partitions: dict[str, int] = {}
    for number, line in enumerate(_partition_text(path).splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields or (number == 1 and not fields[-1].isdigit()):  # blank line, CSV header
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(
                f"{printable(path)}:{number}: expected '<file>.jpg <0|1|2>', got {line!r}"
            )
        partitions[fields[0]] = int(fields[1])
    return partitions


def load_celeba(cfg: DataConfig) -> RawDataset:
    root = Path(cfg.root).expanduser()
    folder = _find_images(root)
    if folder is None:
        where = printable(root)
        raise UserError(
            f"celeba not found: no {IMAGES}/*.jpg under {where}/celeba or {where}. CelebA "
            "cannot be downloaded reliably (Google Drive quotas): get img_align_celeba.zip and "
            f"list_eval_partition.txt from the CelebA site and unpack them so that "
            f"{where}/celeba/{IMAGES}/000001.jpg exists"
        )
    files = sorted(folder.glob("*.jpg"))
    notes: list[str] = []
    size = cfg.image_size
    if size is None:
        size = DEFAULT_SIZE
        notes.append(f"data.image_size not set; faces resized to {size}x{size}")
    spec = DecodeSpec(size, "L" if cfg.channels == 1 else "RGB", crop=FACE_CROP)
    decoded = decode_images(folder, files, [-1] * len(files), spec, cfg.cache_dir)
    if not len(decoded.images):
        raise UserError(f"none of the {len(files)} .jpg files in {printable(folder)} decode")
    notes += decoded.notes(folder)

    # Next to the image folder; Kaggle's nested layout keeps it one level further up; the
    # official Google Drive puts it in Eval/; some unpack it among the images.
    dirs = (folder.parent, folder.parent.parent, folder.parent / "Eval", folder)
    candidates = [d / name for d in dirs for name in PARTITION_FILES]
    partition_file = next((p for p in candidates if p.is_file()), None)
    if partition_file is None:
        where = ", ".join(printable(d) for d in dirs)
        notes.append(f"no list_eval_partition.txt in {where}: all images are training data")
        train = ImageSet(decoded.images, labels_unknown(len(decoded.images)))
        return RawDataset(train, test=None, source=printable(folder), notes=notes)

    partitions = _read_partitions(partition_file)
    is_test = torch.tensor([partitions.get(f) == TEST_PARTITION for f in decoded.files])
    unlisted = sum(f not in partitions for f in decoded.files)
    if unlisted:
        notes.append(f"{unlisted} images not in {partition_file.name}: used for training")
    n_train = int((~is_test).sum())
    if is_test[n_train:].all():
        # The official order puts the test faces last: slices avoid copying gigabytes.
        train_images, test_images = decoded.images[:n_train], decoded.images[n_train:]
    else:
        train_images, test_images = decoded.images[~is_test], decoded.images[is_test]
    notes.append(
        f"official split from {partition_file.name}: {len(train_images)} train+valid, "
        f"{len(test_images)} test"
    )
    train = ImageSet(train_images, labels_unknown(len(train_images)))
    test = ImageSet(test_images, labels_unknown(len(test_images))) if len(test_images) else None
    return RawDataset(train, test=test, source=printable(folder), notes=notes)
