"""CIFAR-10's "python version" batches, unpickled without letting a batch run code.

Each batch (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) is a pickled dict whose
``b"data"`` is a (10000, 3072) uint8 array: the red, green and blue 32x32 planes of one image
per row, row-major, and whose ``b"labels"`` is a list of ints 0..9. A pickle can name any
importable callable and call it while loading, so batches are read with a restricted unpickler
that admits only the types a batch holds: a planted file cannot run code. (The binary version,
:mod:`vaesweep.data.cifar`, needs none of this.)
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import torch

from vaesweep.data.imageset import ImageSet
from vaesweep.errors import UserError


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


def read_pickled_batch(raw: bytes, where: str) -> ImageSet:
    """One batch of the python version (the bytes of ``where``) as images and labels."""
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
