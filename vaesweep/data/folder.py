"""Any folder of images (jpg, jpeg, png, webp, bmp, gif, tif, tiff).

The folder (``data.path``) is searched recursively in sorted order; hidden files and folders are
ignored (they hold caches, VCS data and macOS ``._x.jpg`` forks). Images in subfolders are
labelled by their top-level subfolder (sorted names -> 0, 1, ...); images directly in the folder
get label -1. Decoding to ``data.image_size`` and its cache: :mod:`vaesweep.data.image_files`.
"""

from __future__ import annotations

import os
from pathlib import Path

from vaesweep.config import DataConfig
from vaesweep.data.image_files import DecodeSpec, decode_images, shortlist
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError, printable

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_SIZE = 64


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` by extension (case-insensitive), in sorted order.

    Symlinked subfolders are followed (a folder of links to where the images live is a common
    way to assemble a dataset); a folder reached twice, by a link loop or two links to it, is
    read once (by real path), so a loop ends and no image counts twice.
    """
    found: list[Path] = []
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if not d.startswith(".") and real not in seen:
                seen.add(real)
                kept.append(d)
        dirnames[:] = kept
        found += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def load_folder(cfg: DataConfig) -> RawDataset:
    expected = f"a folder of images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})"
    if not cfg.path:
        raise UserError(f"data=folder needs data.path: {expected}")
    folder = Path(cfg.path).expanduser().resolve()
    given, where = printable(cfg.path), printable(folder)
    if not folder.exists():
        raise UserError(f"data.path={given}: {where} does not exist; expected {expected}")
    if not folder.is_dir():
        raise UserError(f"data.path={given}: {where} is a file; expected {expected}")
    files = list_images(folder)
    if not files:
        raise UserError(f"data.path={given}: no images in {where}; expected {expected}")

    tops = [f.relative_to(folder).parts for f in files]
    classes = sorted({parts[0] for parts in tops if len(parts) > 1})
    index = {name: i for i, name in enumerate(classes)}
    labels = [index[parts[0]] if len(parts) > 1 else -1 for parts in tops]
    notes = []
    size = cfg.image_size
    if size is None:
        size = DEFAULT_SIZE
        notes.append(f"data.image_size not set; images resized to {size}x{size}")
    spec = DecodeSpec(size, "L" if cfg.channels == 1 else "RGB")

    decoded = decode_images(folder, files, labels, spec, cfg.cache_dir)
    if not len(decoded.images):
        raise UserError(
            f"none of the {len(files)} image files in {where} decode: "
            f"{'; '.join(decoded.why_skipped())}"
            + ("; are they images?" if decoded.unreadable else "")
        )
    notes += decoded.notes(folder)
    if classes:
        notes.append(f"{len(classes)} classes from subfolders: {shortlist(classes, 10)}")
    return RawDataset(
        ImageSet(decoded.images, decoded.labels), test=None, source=where, notes=notes
    )
