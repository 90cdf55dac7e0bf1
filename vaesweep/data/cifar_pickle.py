"""CIFAR-10's "python version" batches, read without unpickling them.

Each batch (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) is a pickled dict whose
``b"data"`` is a (10000, 3072) uint8 array: the red, green and blue 32x32 planes of one image
per row, row-major, and whose ``b"labels"`` is a list of ints 0..9. A pickle can name any
importable callable and call it while loading, so batches are never unpickled: their data is
read out of the pickle's opcodes by :func:`vaesweep.data.pickle_reader.read_pickle`, which
builds dicts, lists, bytes, numbers and numpy arrays itself and calls nothing the file names.
(The binary version, :mod:`vaesweep.data.cifar`, needs none of this.)
"""

from __future__ import annotations

import numpy as np
import torch

from vaesweep.data.imageset import ImageSet
from vaesweep.data.pickle_reader import Forbidden, read_pickle
from vaesweep.errors import UserError


def read_pickled_batch(raw: bytes, where: str) -> ImageSet:
    """One batch of the python version (the bytes of ``where``) as images and labels."""
    try:
        batch = read_pickle(raw)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = torch.tensor([int(v) for v in batch[b"labels"]], dtype=torch.long)
    except Forbidden as e:
        raise UserError(
            f"{where} is not a CIFAR-10 batch: it names {e}, which no CIFAR-10 batch "
            "holds; refused without running anything (fetch the official files again)"
        ) from None
    except Exception as e:  # a malformed pickle fails in many ways; all mean "corrupt"
        raise UserError(f"{where} is not a CIFAR-10 batch ({e!r}); fetch it again") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(
            f"{where} has data of shape {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) and N labels"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, labels)
