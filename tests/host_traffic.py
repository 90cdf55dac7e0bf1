"""A dispatch mode for tests of what a training step asks of the host.

On a GPU, reading a value back (``item``, ``bool``) or copying a host tensor to the device makes
the step wait; tests run the code on PyTorch's ``meta`` device (shapes, no data) or on the CPU
under :class:`NoHostTraffic`, which fails either.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

_READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default)


class NoHostTraffic(TorchDispatchMode):
    """Fails an operation that reads a value back to the host, or that copies a host tensor
    to the ``meta`` device (the stand-in for a GPU)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in _READS:
            raise AssertionError(f"read back to the host: {func}")
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        out: Any = func(*args, **(kwargs or {}))
        outputs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if any(t.device.type == "cpu" for t in inputs) and any(
            t.device.type == "meta" for t in outputs
        ):
            raise AssertionError(f"copied from the host: {func}")
        return out
