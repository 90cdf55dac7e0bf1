"""Opening one image file: only a regular file is read, and its pixels come out in 8 bits.

Split from :mod:`vaesweep.data.image_files` (which decodes and caches whole folders): these are
the per-file rules that keep a folder from hanging the loader or decoding to the wrong levels.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image


class NotRegular(ValueError):
    """A path that is no regular file (a FIFO, socket, device); the message says which."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file, else :class:`NotRegular`.

    Opened non-blocking and checked on the open descriptor: a plain ``open`` of a FIFO waits
    for a writer forever, and checking the path first would leave a window for a swap.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(next((k for test, k in _KINDS if test(mode)), "not a regular file"))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """``img`` in ``mode`` ("RGB" or "L"); wide greyscale scaled to 8 bits, alpha on white."""
    # convert() clips wide greyscale at 255 (a 16-bit image turns white, a [0, 1] float one
    # black), so it is scaled to 8 bits first. Integers (I;16 and 32-bit I) are read on the
    # 16-bit scale, their top 8 bits kept; floats (F) as intensities in [0, 1]. Each outside
    # value is clipped. (README, "Your own images".)
    if img.mode == "I" or img.mode.startswith("I;16"):
        wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8
        img = Image.fromarray(wide.astype(np.uint8))
    elif img.mode == "F":
        unit = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        img = Image.fromarray(np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8))
    if img.has_transparency_data:
        # A plain convert() would expose whatever colour hides under transparent pixels.
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return img.convert(mode)
