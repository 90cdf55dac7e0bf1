"""Datasets as users really have them: CIFAR-10's binary version, folders that an extraction left
half done next to the complete archive, and IDX sets missing a file (written here in each
format's real on-disk layout; no downloads)."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vaesweep.config import DataConfig
from vaesweep.data import idx as idx_module
from vaesweep.data.cifar import load_cifar10
from vaesweep.data.idx import load_fashion_mnist, load_mnist
from vaesweep.errors import UserError

PY_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
BIN_BATCHES = [f"{n}.bin" for n in PY_BATCHES]
RECORD = 1 + 3 * 32 * 32  # the binary version: a label byte, then the pixel bytes


def cifar_cfg(root: Path) -> DataConfig:
    return DataConfig(name="cifar10", root=str(root))


def write_binary_cifar(folder: Path, n: int = 3) -> dict[str, np.ndarray]:
    """The binary version: per batch, n records of a label byte and 3,072 pixel bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = {}
    for name in BIN_BATCHES:
        rec = rng.integers(0, 256, (n, RECORD), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        (folder / name).write_bytes(rec.tobytes())
        records[name] = rec
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\n")
    return records


def write_python_cifar(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in PY_BATCHES:
        batch = {
            b"labels": [int(x) for x in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def pack(root: Path, folder: str, archive: str) -> None:
    with tarfile.open(root / archive, "w:gz") as tar:
        tar.add(root / folder, arcname=folder)


def check_binary(raw, records: dict[str, np.ndarray]) -> None:
    assert raw.train.images.shape == (15, 3, 32, 32)
    rec = records["data_batch_2.bin"][1]  # image 4: batch 2, record 1
    # After the label byte: the red, green, blue planes, row-major.
    assert raw.train.images[4, 1, 7, 9] == rec[1 + 1024 + 7 * 32 + 9]
    assert raw.train.images[4, 2, 31, 0] == rec[1 + 2048 + 31 * 32]
    expected = [int(r[0]) for n in BIN_BATCHES[:5] for r in records[n]]
    assert raw.train.labels.tolist() == expected and raw.train.labels.dtype == torch.long
    assert (
        raw.test is not None
        and raw.test.labels.tolist() == records["test_batch.bin"][:, 0].tolist()
    )


def test_cifar_binary_version_folder_and_archive(tmp_path: Path) -> None:
    """The binary version was 'cifar10 not found'; it is read from its folder or its .tar.gz."""
    records = write_binary_cifar(tmp_path / "cifar-10-batches-bin")
    raw = load_cifar10(cifar_cfg(tmp_path))
    check_binary(raw, records)
    assert raw.source == str(tmp_path / "cifar-10-batches-bin")

    packed = tmp_path / "packed"
    packed.mkdir()
    (tmp_path / "cifar-10-batches-bin").rename(packed / "cifar-10-batches-bin")
    pack(packed, "cifar-10-batches-bin", "cifar-10-binary.tar.gz")
    (packed / "cifar-10-batches-bin").rename(tmp_path / "elsewhere")
    raw = load_cifar10(cifar_cfg(packed))
    check_binary(raw, records)
    assert raw.source.endswith("cifar-10-binary.tar.gz")


@pytest.mark.parametrize("damage", ["partial record", "empty", "label 12"])
def test_cifar_binary_damaged_batch_is_one_line(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    write_binary_cifar(folder)
    batch = folder / "data_batch_4.bin"
    if damage == "partial record":
        batch.write_bytes(batch.read_bytes()[:-100])
    elif damage == "empty":
        batch.write_bytes(b"")
    else:
        data = bytearray(batch.read_bytes())
        data[RECORD] = 12
        batch.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"data_batch_4\.bin") as err:
        load_cifar10(cifar_cfg(tmp_path))
    assert "\n" not in str(err.value)


def test_cifar_not_found_names_both_versions(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cifar-10-batches-py.*cifar-10-binary\.tar\.gz"):
        load_cifar10(cifar_cfg(tmp_path))
    # data.root pointing at the batches folder itself: the message says which root is meant.
    (tmp_path / "cifar-10-batches-bin").mkdir()
    with pytest.raises(UserError, match=rf"data\.root={tmp_path}$"):
        load_cifar10(cifar_cfg(tmp_path / "cifar-10-batches-bin"))


@pytest.mark.parametrize(
    ("folder", "archive", "write", "lost"),
    [
        ("cifar-10-batches-py", "cifar-10-python.tar.gz", write_python_cifar, "data_batch_4"),
        ("cifar-10-batches-bin", "cifar-10-binary.tar.gz", write_binary_cifar, "test_batch.bin"),
    ],
)
def test_cifar_half_extracted_folder_gives_way_to_the_archive_beside_it(
    tmp_path: Path, folder: str, archive: str, write, lost: str
) -> None:
    """A folder missing a batch was refused even with the complete archive in the same root."""
    write(tmp_path / folder)
    pack(tmp_path, folder, archive)
    (tmp_path / folder / lost).unlink()
    raw = load_cifar10(cifar_cfg(tmp_path))
    assert raw.source == str(tmp_path / archive) and len(raw.train) == 15
    assert any(f"{lost} missing" in n and archive in n for n in raw.notes)
    # A batch cut short (extraction stopped in it) gives way too.
    write_cifar_truncated = tmp_path / folder / lost
    write_cifar_truncated.write_bytes(b"\x80\x02}q")
    raw = load_cifar10(cifar_cfg(tmp_path))
    assert raw.source == str(tmp_path / archive)
    # Without the archive: the missing file is named, and what would fix it.
    (tmp_path / archive).unlink()
    write_cifar_truncated.unlink()
    with pytest.raises(UserError, match=rf"{lost} missing; extract {archive} into"):
        load_cifar10(cifar_cfg(tmp_path))


def test_cifar_incomplete_python_folder_with_a_complete_binary_one(tmp_path: Path) -> None:
    write_python_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").unlink()
    records = write_binary_cifar(tmp_path / "cifar-10-batches-bin")
    raw = load_cifar10(cifar_cfg(tmp_path))
    check_binary(raw, records)
    assert any("data_batch_1 missing" in n for n in raw.notes)


# --- IDX: a missing or half-extracted file ---------------------------------------------------


IDX = {
    "train-images-idx3-ubyte": (10, 28, 28),
    "train-labels-idx1-ubyte": (10,),
    "t10k-images-idx3-ubyte": (4, 28, 28),
    "t10k-labels-idx1-ubyte": (4,),
}


def idx_bytes(shape: tuple[int, ...], fill: int = 7) -> bytes:
    """Per the IDX spec: 00 00 08 <ndim>, big-endian uint32 dims, then uint8 data."""
    header = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    return header + bytes([fill % 10 if len(shape) == 1 else fill]) * int(np.prod(shape))


def write_idx_set(folder: Path, gz: bool = False, skip: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in IDX.items():
        if name != skip:
            data = idx_bytes(shape)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def test_idx_not_found_names_the_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw folder with three of the four files: the message said only 'not found under ...'."""
    monkeypatch.setitem(idx_module.SYSTEM_DIRS, "mnist", ())
    write_idx_set(tmp_path / "MNIST" / "raw", skip="t10k-labels-idx1-ubyte")
    with pytest.raises(UserError) as err:
        load_mnist(DataConfig(name="mnist", root=str(tmp_path)))
    message = str(err.value)
    assert f"{tmp_path / 'MNIST' / 'raw'} lacks t10k-labels-idx1-ubyte" in message
    assert "put them there" in message and "\n" not in message


def test_idx_half_extracted_file_gives_way_to_the_gz_beside_it(tmp_path: Path) -> None:
    """torchvision keeps each .gz beside the file it extracts; an extraction that stopped half
    way left a truncated file that was refused while the complete .gz sat next to it. (A file
    missing altogether was already read from its .gz.)"""
    raw_dir = tmp_path / "MNIST" / "raw"
    write_idx_set(raw_dir, gz=True)
    write_idx_set(raw_dir, skip="t10k-images-idx3-ubyte")  # that one only as .gz
    (raw_dir / "train-images-idx3-ubyte").write_bytes(
        idx_bytes(IDX["train-images-idx3-ubyte"])[:500]
    )
    raw = load_mnist(DataConfig(name="mnist", root=str(tmp_path)))
    assert raw.train.images.shape == (10, 1, 28, 28) and raw.test is not None
    assert any("truncated" in n and "train-images-idx3-ubyte.gz beside it" in n for n in raw.notes)


def test_idx_fallback_note_names_what_data_root_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note said 'data.root=X holds no fashion_mnist files' even when it held three."""
    system = tmp_path / "system"
    write_idx_set(system, gz=True)
    monkeypatch.setitem(idx_module.SYSTEM_DIRS, "fashion_mnist", (system,))
    mine = tmp_path / "mine"
    write_idx_set(mine / "FashionMNIST" / "raw", skip="t10k-images-idx3-ubyte")
    raw = load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(mine)))
    assert raw.source == str(system)
    note = raw.notes[0]
    assert note.startswith(idx_module.FALLBACK_NOTE)
    assert f"{mine / 'FashionMNIST' / 'raw'} lacks t10k-images-idx3-ubyte" in note
    assert note.endswith(f"using {system} instead")
    empty = tmp_path / "empty"
    raw = load_fashion_mnist(DataConfig(name="fashion_mnist", root=str(empty)))
    assert (
        "holds any of its IDX files" in raw.notes[0]
        and str(empty / "fashion-mnist") in raw.notes[0]
    )
