"""vaesweep.data.pickle_reader: a pickle's data read out without calling anything it names.

Every value is compared with what ``pickle.loads`` gives for the same bytes (the reference);
the refusals check that no named callable ran.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaesweep.data.pickle_reader import Forbidden, read_pickle


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            # numpy's own unpickling keeps a big-endian array so at protocol 5 only
            and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(b, np.generic):
        return type(a) is type(b) and a == b
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


VALUES = {
    "plain": {
        "n": [0, 1, -1, 255, 65536, -(2**40), 2**70],
        "x": (1.5, float("inf"), None, True, False),
        "s": "crème",
        b"b": b"\x00\xff" * 200,
        "set": {1, 2},
        "fs": frozenset({3}),
        "nested": [[], {}, ()],
    },
    "arrays": {
        b"data": np.arange(3 * 3072, dtype=np.uint8).reshape(3, 3072),
        b"labels": [np.int64(1), 2, 3],
        "f32": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
        "big_endian": np.arange(4, dtype=">i4"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "zero_d": np.array(7.0),
        "empty": np.zeros((0, 5), dtype=np.uint8),
        "scalars": [np.float32(0.5), np.uint8(9), np.bool_(True)],
        "shared": [b"same"] * 3,
    },
}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("name", list(VALUES))
def test_reads_what_pickle_loads_reads(name: str, protocol: int) -> None:
    raw = pickle.dumps(VALUES[name], protocol=protocol)
    assert _same(read_pickle(raw), pickle.loads(raw))


def _py2_cifar_batch() -> bytes:
    """A batch as Python 2's cPickle wrote the official files (protocol 2, str as 'U')."""

    def s(text: bytes) -> bytes:  # SHORT_BINSTRING: Python 2's str
        return b"U" + bytes([len(text)]) + text

    data = bytes(range(256)) * 24  # 2 images x 3072 bytes
    return b"".join(
        [
            b"\x80\x02}q\x01(",
            s(b"data") + b"q\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04",
            b"K\x00\x85" + s(b"b") + b"\x87Rq\x05(K\x01K\x02M\x00\x0c\x86",
            b"cnumpy\ndtype\nq\x06" + s(b"u1") + b"K\x00K\x01\x87Rq\x07(K\x03" + s(b"|"),
            b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89",
            b"T" + struct.pack("<I", len(data)) + data + b"tb",
            s(b"labels") + b"q\x08]q\t(K\x06K\te",
            s(b"batch_label") + s(b"training batch 1 of 5") + b"u.",
        ]
    )


def test_reads_a_batch_written_by_python_2() -> None:
    raw = _py2_cifar_batch()
    expected = pickle.loads(raw, encoding="bytes")
    got = read_pickle(raw)
    assert _same(got, expected)
    assert got[b"data"].shape == (2, 3072) and got[b"labels"] == [6, 9]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_named_callable_is_refused_and_never_called(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    raw = pickle.dumps({b"data": _Payload(marker)}, protocol=protocol)
    with pytest.raises(Forbidden, match=r"posix\.system"):
        read_pickle(raw)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (_Plain(), r"copyreg|NEWOBJ|_Plain"),  # an instance: built by a class, never here
        (np.array([b"x", None], dtype=object), "dtype"),  # its payload is more pickles
        (np.zeros(2, dtype=[("a", "<i4")]), "dtype"),  # structured
    ],
)
def test_objects_and_object_arrays_are_refused(value: Any, what: str) -> None:
    for protocol in (2, 4):
        with pytest.raises(Forbidden, match=what):
            read_pickle(pickle.dumps(value, protocol=protocol))


def test_out_of_band_buffers_are_refused() -> None:
    raw = pickle.dumps(np.zeros(3), protocol=5, buffer_callback=lambda b: False)
    with pytest.raises(Forbidden, match="NEXT_BUFFER"):
        read_pickle(raw)


def test_damaged_pickles_are_value_errors() -> None:
    good = pickle.dumps({b"data": np.zeros((2, 3), dtype=np.uint8)}, protocol=2)
    for raw in (b"", b"not a pickle", good[: len(good) // 2], good[:-1]):
        with pytest.raises(ValueError):
            read_pickle(raw)
    # Array bytes that do not match the declared shape.
    lying = good.replace(b"K\x02K\x03\x86", b"K\x09K\x03\x86")
    assert lying != good
    with pytest.raises(ValueError, match="with 6 bytes"):
        read_pickle(lying)
