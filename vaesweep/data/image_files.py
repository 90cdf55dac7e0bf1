"""Image files -> uint8 tensors of one size and mode, decoded once and cached.

Each image is decoded with Pillow, converted to RGB (``L`` for one channel; transparency is
composited onto white; wide greyscale scaled to 8 bits), resized so its shorter side is the
target size and center-cropped. This has to happen per image because a folder's images differ
in size, and it is slow, while a sweep loads the same images many times: so the decoded tensor
is cached as a safetensors file (:mod:`vaesweep.tensorfile`: no pickle) under
``data.cache_dir``, else ``$VAESWEEP_CACHE_DIR/folders``, else ``~/.cache/vaesweep/folders`` (never in the user's folder, which may be read-only). The cache key
covers the folder, the output size and mode, and every file's path, size and mtime, so adding,
removing or touching an image invalidates it. Only regular files are opened: a FIFO, socket or
device named like an image is skipped (opening a FIFO would wait for a writer forever). Used by
:mod:`vaesweep.data.folder`, :mod:`vaesweep.data.celeba` and :mod:`vaesweep.data.photos`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from vaesweep import tensorfile
from vaesweep.cpus import usable_cpus
from vaesweep.data.image_open import NotRegular, open_regular, to_mode
from vaesweep.errors import printable

log = logging.getLogger(__name__)

#: Bumped when decoding changes (2: float and 32-bit TIFFs scaled; 3: images too large listed
#: apart; 4: a safetensors file, never a pickle), so no stale cache is used.
CACHE_VERSION = 4
#: The cache files' suffix (:mod:`vaesweep.tensorfile`).
CACHE_SUFFIX = ".safetensors"
#: The name of a cache file before 0.2.0 (a pickle, ``<folder>-<12 hex>-<16 hex>.pt``): removed
#: when the same folder's cache is written, since no version reads it any more.
PICKLED_CACHE = re.compile(r"[A-Za-z0-9_.]+-[0-9a-f]{12}-[0-9a-f]{16}\.pt")
#: The most pixels one image may decode to (about 2 GB in Pillow, which holds RGB in 4 bytes):
#: a museum scan of a painting fits, a decompression bomb does not. Checked after JPEG's reduced
#: decoding (``draft``), so a JPEG of any size that shrinks below it is read; Pillow's own check
#: (which warns from 89 Mpx and refuses from 179 Mpx, before ``draft`` can help) is off.
MAX_PIXELS = 512 * 2**20
Image.MAX_IMAGE_PIXELS = None
_SHOWN = 5  # file names listed in a "skipped" note
_CHUNK = 64  # files per thread-pool task: fewer futures for folders of 200k images


@dataclass(frozen=True)
class DecodeSpec:
    """How every file becomes a ``size`` x ``size`` image in ``mode`` ("RGB" or "L")."""

    size: int
    mode: str = "RGB"
    #: Center-crop a square of this side first (CelebA's faces: 148), then resize.
    crop: int | None = None

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3


@dataclass
class Decoded:
    """The images that decoded, their labels and relative paths, and those that did not."""

    images: torch.Tensor
    labels: torch.Tensor
    files: list[str]
    skipped: list[str]
    cache_file: Path | None
    from_cache: bool
    #: Of ``skipped``, the images larger than :data:`MAX_PIXELS`: "name (W x H)".
    too_large: list[str] = field(default_factory=list)
    #: Of ``skipped``, the paths that are no regular file, never opened: "name (a FIFO)".
    not_regular: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[str]:
        """The skipped files that were opened and failed to decode."""
        named = {f.rsplit(" (", 1)[0] for f in (*self.too_large, *self.not_regular)}
        return [f for f in self.skipped if f not in named]

    def why_skipped(self) -> list[str]:
        """One phrase per kind of skipped file: unreadable, too large, not a regular file."""
        out = []
        if self.unreadable:
            out.append(f"{len(self.unreadable)} unreadable files: {shortlist(self.unreadable)}")
        if self.too_large:
            out.append(
                f"{len(self.too_large)} images over {MAX_PIXELS / 2**20:.0f} Mpx, too large "
                f"to decode (shrink them first): {shortlist(self.too_large)}"
            )
        if self.not_regular:
            out.append(
                f"{len(self.not_regular)} paths that are not regular files, never read: "
                f"{shortlist(self.not_regular)}"
            )
        return out

    def notes(self, folder: Path) -> list[str]:
        n = len(self.images)
        if self.from_cache:
            cache = printable(self.cache_file or "")
            lines = [f"loaded {n} decoded images of {printable(folder)} from the cache {cache}"]
        else:
            where = f"cached in {printable(self.cache_file)}" if self.cache_file else "not cached"
            lines = [f"decoded {n} images from {printable(folder)} ({where})"]
        lines += [f"skipped {why}" for why in self.why_skipped()]
        return lines


def shortlist(names: Sequence[str], shown: int = _SHOWN) -> str:
    """The first few names (printable), comma-separated, with "..." when there are more."""
    return ", ".join(map(printable, names[:shown])) + (", ..." if len(names) > shown else "")


def cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("VAESWEEP_CACHE_DIR"):
        return Path(os.environ["VAESWEEP_CACHE_DIR"]).expanduser() / "folders"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "vaesweep/folders"


class TooLarge(ValueError):
    """An image that would decode to more than :data:`MAX_PIXELS`; the message is "W x H"."""


def decode_file(path: Path, spec: DecodeSpec) -> np.ndarray:
    """One image file -> uint8 (C, size, size); raises whatever Pillow raises if unreadable,
    :class:`TooLarge` if it would decode to more than :data:`MAX_PIXELS`, :class:`NotRegular`
    (before reading a byte) if it is no regular file."""
    with open_regular(path) as f, Image.open(f) as im:
        w, h = im.size
        side: float = min(w, h, spec.crop or min(w, h))
        scale = spec.size / side
        if scale < 1:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: far faster for big photos.
            im.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))
        if im.width * im.height > MAX_PIXELS:
            raise TooLarge(f"{w}x{h}")
        img = to_mode(ImageOps.exif_transpose(im), spec.mode)
    side *= min(img.size) / min(w, h)  # draft() may have shrunk the image
    left, top = (img.width - side) / 2, (img.height - side) / 2
    box = (left, top, left + side, top + side)
    img = img.resize((spec.size, spec.size), Image.Resampling.BICUBIC, box=box)
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_all(
    files: Sequence[Path], spec: DecodeSpec
) -> tuple[np.ndarray, np.ndarray, dict[int, str], dict[int, str]]:
    """The images, which decoded, the sizes ("W x H") of those :class:`TooLarge` and the
    kinds of those :class:`NotRegular`."""
    # Filled in place by the workers: no second copy of a large dataset. PIL releases the GIL
    # while decoding and resizing, so threads give real parallelism.
    out = np.zeros((len(files), spec.channels, spec.size, spec.size), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    large: dict[int, str] = {}
    special: dict[int, str] = {}

    def work(start: int) -> None:
        for i in range(start, min(start + _CHUNK, len(files))):
            try:
                out[i] = decode_file(files[i], spec)
                ok[i] = True
            except TooLarge as e:
                large[i] = str(e)
            except NotRegular as e:
                special[i] = str(e)
            except Exception as e:  # Pillow raises many types for broken files; all mean skip
                log.debug("cannot decode %s: %r", printable(files[i]), e)

    with ThreadPoolExecutor(max_workers=min(8, usable_cpus())) as pool:
        list(pool.map(work, range(0, len(files), _CHUNK)))
    return out, ok, large, special


def _cache_file(
    root: Path, folder: Path, rel: list[str], labels: Sequence[int], spec: DecodeSpec
) -> Path:
    def digest(obj: object) -> str:
        return hashlib.sha256(json.dumps(obj).encode()).hexdigest()

    stats = []
    for name in rel:
        try:
            st = (folder / name).stat()
            stats.append((name, st.st_size, st.st_mtime_ns))
        except OSError:  # vanished since listing: it will be skipped as unreadable
            stats.append((name, -1, -1))
    # <folder name>-<folder and spec>-<contents>: a changed folder reuses the prefix, so its
    # stale cache can be found and removed.
    ident = digest([CACHE_VERSION, str(folder.resolve()), spec.size, spec.mode, spec.crop])[:12]
    slug = re.sub(r"[^A-Za-z0-9_.]+", "_", folder.name)[:40] or "root"
    return root / f"{slug}-{ident}-{digest([stats, list(labels)])[:16]}{CACHE_SUFFIX}"


def read_cache(path: Path) -> Decoded | None:
    if not path.is_file():
        return None
    try:
        blob = tensorfile.loads(path.read_bytes())
        if blob["version"] != CACHE_VERSION:
            return None
        return Decoded(
            blob["images"],
            blob["labels"],
            blob["files"],
            blob["skipped"],
            path,
            True,
            blob["too_large"],
            # Absent from caches written before it existed, which held no such path: a folder
            # with a FIFO in it never finished decoding then.
            blob.get("not_regular", []),
        )
    except Exception as e:  # a damaged cache is only a lost shortcut
        log.warning("ignoring unreadable cache %s: %r", printable(path), e)
        return None


def write_cache(path: Path, decoded: Decoded) -> bool:
    blob = {
        "version": CACHE_VERSION,
        "images": decoded.images,
        "labels": decoded.labels,
        "files": decoded.files,
        "skipped": decoded.skipped,
        "too_large": decoded.too_large,
        "not_regular": decoded.not_regular,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory + os.replace: a concurrent or killed run never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(tensorfile.dumps(blob))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        log.warning(
            "cannot write the image cache %s (%s); decoding again next time", printable(path), e
        )
        return False
    prefix = path.name.rsplit("-", 1)[0]
    for stale in path.parent.glob(f"{prefix}-*{CACHE_SUFFIX}"):
        if stale != path:
            stale.unlink(missing_ok=True)
    # Pickled caches of vaesweep before 0.2.0 (never read now) of a folder of the same name.
    slug = prefix.split("-", 1)[0]
    for old in path.parent.glob(f"{slug}-*.pt"):
        if PICKLED_CACHE.fullmatch(old.name):
            old.unlink(missing_ok=True)
    return True


def decode_images(
    folder: Path,
    files: Sequence[Path],
    labels: Sequence[int],
    spec: DecodeSpec,
    cache_dir: str | None,
) -> Decoded:
    """Decode ``files`` (under ``folder``) with ``spec``, or load them from the cache."""
    rel = [f.relative_to(folder).as_posix() for f in files]
    path = _cache_file(cache_root(cache_dir), folder, rel, labels, spec)
    cached = read_cache(path)
    if cached is not None:
        return cached
    images, ok, large, special = _decode_all(files, spec)
    keep = np.flatnonzero(ok)
    if len(keep) < len(files):
        images = images[keep]
    decoded = Decoded(
        images=torch.from_numpy(images),
        labels=torch.tensor(list(labels), dtype=torch.long)[torch.from_numpy(keep)],
        files=[rel[i] for i in keep],
        skipped=[rel[i] for i in np.flatnonzero(~ok)],
        cache_file=None,
        from_cache=False,
        too_large=[f"{rel[i]} ({size})" for i, size in sorted(large.items())],
        not_regular=[f"{rel[i]} ({kind})" for i, kind in sorted(special.items())],
    )
    if decoded.skipped and len(keep):  # none decoded: the loader's one error line says why
        for why in decoded.why_skipped():
            log.warning("skipped %s in %s", why, printable(folder))
    if len(keep) and write_cache(path, decoded):
        decoded.cache_file = path
    return decoded
