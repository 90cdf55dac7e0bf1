"""What the arrays of an ``.npz`` file declare, checked before numpy allocates them.

``np.load`` trusts each member's ``.npy`` header: a damaged or planted member that declares
shape (10**7, 2048, 2048) makes numpy allocate 38 TiB before it reads a byte (a traceback, or
on an overcommitting machine, a process the kernel kills). An ``.npy`` member's data is exactly
the declared shape times the item size, right after its header, and the zip directory records
each member's uncompressed size; so the header is read alone first, and a declared size that
differs from the stored one, or that exceeds this machine's memory, is refused in one line.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from vaesweep.errors import UserError, printable


def readable_size(n: float) -> str:
    """Bytes as "3.0 GiB": for messages about sizes."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def memory_bytes() -> int | None:
    """This machine's physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an ``.npy`` stream declares; ``f`` is left at its first data byte."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):  # 3.0 only allows UTF-8 in the (here ASCII) header
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), dtype


def check_npz(path: Path, keys: Sequence[str]) -> None:
    """Refuse ``path`` (:class:`UserError`) if a member named in ``keys`` declares more data
    than it stores, or all of them together more than this machine's memory. Members that are
    absent or hold objects are left to ``np.load`` (the caller's messages name them). A file
    that is no zip, or a member whose header is damaged, raises what ``zipfile`` and numpy raise
    (OSError, ValueError, BadZipFile, EOFError, zlib.error), for the caller to word."""
    where = printable(path)
    total = 0
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for key in keys:
            member = f"{key}.npy"
            if member not in names:
                continue
            info = z.getinfo(member)
            with z.open(info) as f:
                try:
                    shape, dtype = _header(f)
                # numpy's header parser raises more than ValueError on a damaged header
                # (tokenize.TokenError, for one): any failure means the same.
                except Exception as e:
                    raise ValueError(f"damaged .npy header in {member}: {e!r}") from None
                stored = info.file_size - f.tell()
            if dtype.hasobject:
                continue
            declared = math.prod(shape) * dtype.itemsize
            if declared != stored:
                raise UserError(
                    f"{where}: {key} declares shape {shape} of {dtype} = "
                    f"{readable_size(declared)}, but the file stores {readable_size(stored)} "
                    "of it; the file is damaged, fetch it again"
                )
            total += declared
    memory = memory_bytes()
    if memory is not None and total > memory:
        raise UserError(
            f"{where} holds {readable_size(total)} of arrays, more than this machine's "
            f"{readable_size(memory)} of memory; load it on a larger machine"
        )
