"""CIFAR-10 from the original "python version" batches (Krizhevsky 2009).

Each batch (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) is a pickled dict whose
``b"data"`` is a (10000, 3072) uint8 array: the red, green and blue 32x32 planes of one image
per row, row-major, and whose ``b"labels"`` is a list of ints 0..9. Read from
``<root>/cifar-10-batches-py`` (torchvision's layout) or straight out of
``<root>/cifar-10-python.tar.gz`` without unpacking it. ``data.download=true`` lets torchvision
fetch the archive. Batches are read with a restricted unpickler that admits only the types a
batch holds, so a planted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from vaesweep.config import DataConfig
from vaesweep.data.imageset import ImageSet, RawDataset
from vaesweep.errors import UserError

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, for latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


#: Every callable a real (or faithfully re-packed) batch names: numpy's array and scalar
#: reconstruction under their numpy 1 and 2 module names, and bytes at protocol 2.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_SCALAR = np.int64(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5's out-of-band-capable form
_ALLOWED = {
    **{(f"numpy.{m}.multiarray", "_reconstruct"): _RECONSTRUCT for m in ("core", "_core")},
    **{(f"numpy.{m}.multiarray", "scalar"): _SCALAR for m in ("core", "_core")},
    **{(f"numpy.{m}.numeric", "_frombuffer"): _FROMBUFFER for m in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what CIFAR-10 batches hold: dicts, lists, bytes, str, ints and numpy arrays.

    A pickle can name any importable callable and call it while loading (``os.system``, say);
    this unpickler refuses every name outside :data:`_ALLOWED` before anything is called.
    """

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Forbidden(f"{module}.{name}") from None


class _Forbidden(pickle.UnpicklingError):
    """A batch names a callable no CIFAR-10 batch holds."""


def _unpickle(raw: bytes, where: str) -> ImageSet:
    try:
        # Never plain pickle.loads: a batch file in a folder someone gave you can run code.
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = torch.tensor([int(v) for v in batch[b"labels"]], dtype=torch.long)
    except _Forbidden as e:
        raise UserError(
            f"{where} is not a CIFAR-10 batch: it would call {e}, which no CIFAR-10 batch "
            "holds; refused without running it (fetch the official files again)"
        ) from None
    except Exception as e:  # unpickling errors come in many types; all mean "corrupt"
        raise UserError(f"{where} is not a CIFAR-10 batch ({e!r}); fetch it again") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(
            f"{where} has data of shape {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) and N labels"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, labels)


def _read_folder(folder: Path) -> tuple[list[ImageSet], ImageSet]:
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder} is incomplete: {', '.join(missing)} missing; fetch it again")
    train = [_unpickle((folder / n).read_bytes(), str(folder / n)) for n in TRAIN_BATCHES]
    return train, _unpickle((folder / TEST_BATCH).read_bytes(), str(folder / TEST_BATCH))


def _read_archive(archive: Path) -> tuple[list[ImageSet], ImageSet]:
    wanted = {f"{FOLDER}/{n}" for n in (*TRAIN_BATCHES, TEST_BATCH)}
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
        raise UserError(f"{archive} lacks {', '.join(missing)}; is it cifar-10-python.tar.gz?")

    def batch(n: str) -> ImageSet:
        return _unpickle(raw[f"{FOLDER}/{n}"], f"{archive}:{FOLDER}/{n}")

    return [batch(n) for n in TRAIN_BATCHES], batch(TEST_BATCH)


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
    folder, archive = root / FOLDER, root / ARCHIVE
    looked = f"{folder} and {archive}"
    if not folder.is_dir() and not archive.is_file() and cfg.download:
        _download(root, looked)
    if folder.is_dir():
        train, test = _read_folder(folder)
        source = str(folder)
    elif archive.is_file():
        train, test = _read_archive(archive)
        source = str(archive)
    else:
        raise UserError(
            f"cifar10 not found: looked for {looked}; put the CIFAR-10 python version there "
            "or pass data.download=true"
        )
    images = torch.cat([b.images for b in train])
    labels = torch.cat([b.labels for b in train])
    return RawDataset(
        ImageSet(images, labels), test, source=source, notes=[f"cifar10 from {source}"]
    )
