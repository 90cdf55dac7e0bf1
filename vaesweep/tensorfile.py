"""Nested states of tensors and plain values as one safetensors file: nothing is unpickled.

A run's ``checkpoint.pt`` and a folder's decoded-image cache hold dicts of tensors, numbers,
strings and lists (an optimiser's state is keyed by integers). ``torch.save`` writes them as a
pickle, and ``torch.load(weights_only=True)`` reads that with an allow-listed unpickler: safe by
design, but an unpickler all the same, which has had holes (CVE-2025-32434, torch < 2.6). Here
the tensors go into a safetensors file (a JSON header of names, dtypes, shapes and offsets, then
the raw bytes) and everything else into its header's metadata as JSON, where each tensor is a
``{"$tensor": name}`` reference. Reading parses JSON and copies bytes; no code can run.

JSON cannot say everything Python can, so three forms are tagged: ``{"$tuple": [...]}``, a dict
whose keys are not all strings ``{"$dict": [[key, value], ...]}``, and a non-finite float
``{"$float": "nan" | "inf" | "-inf"}``. A dict key that starts with ``$`` is stored the second
way, so no user value is ever taken for a tag.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: The metadata key holding the JSON tree (safetensors metadata maps strings to strings).
TREE_KEY = "vaesweep.tree"
#: A header larger than this is no file of ours (the JSON of a state is kilobytes).
MAX_HEADER = 64 * 2**20


class UnreadableTensorFile(ValueError):
    """Bytes that are no tensor file of this module (not safetensors, or no tree in it)."""


def dumps(obj: Any) -> bytes:
    """``obj`` (dicts, lists, tuples, tensors, str, int, float, bool, None) as safetensors
    bytes. Tensors are saved from the CPU; views of one buffer are copied apart (safetensors
    refuses two names over one buffer); ``obj`` itself is not changed."""
    import torch
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}
    storages: set[int] = set()

    def tensor(t: torch.Tensor) -> dict[str, str]:
        if id(t) not in names:
            name = f"t{len(tensors)}"
            cpu = t.detach().to("cpu").contiguous()
            if cpu.untyped_storage().data_ptr() in storages:
                cpu = cpu.clone()  # a view of a tensor already stored: its own buffer
            storages.add(cpu.untyped_storage().data_ptr())
            tensors[name], names[id(t)] = cpu, name
        return {"$tensor": names[id(t)]}

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return tensor(value)
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: encode(v) for k, v in value.items()}
            return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"$tuple": [encode(v) for v in value]}
        if isinstance(value, list):
            return [encode(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return {"$float": repr(value)}
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in a tensor file")

    tree = json.dumps(encode(obj), allow_nan=False, separators=(",", ":"))
    return bytes(save(tensors, metadata={TREE_KEY: tree}))


def loads(data: bytes, device: str | torch.device | None = None) -> Any:
    """What :func:`dumps` stored, its tensors on ``device`` (default: the CPU).

    Raises :class:`UnreadableTensorFile` for bytes that are not such a file: another format (a
    pickle from ``torch.save``), a truncated file, a header that lies about its offsets.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise UnreadableTensorFile(f"{len(data)} bytes is too short for a tensor file")
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER or 8 + size > len(data):
        kind = "a zip (a torch.save pickle)" if data[:2] == b"PK" else "not a safetensors file"
        raise UnreadableTensorFile(f"no safetensors header: {kind}")
    try:
        header = json.loads(data[8 : 8 + size])
        tree = json.loads(header["__metadata__"][TREE_KEY])
        tensors = load(data)
    except (ValueError, KeyError, TypeError, RecursionError, SafetensorError) as err:
        raise UnreadableTensorFile(f"damaged tensor file ({type(err).__name__})") from None
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return _decode(tree, tensors)


def _decode(value: Any, tensors: dict[str, Any]) -> Any:
    try:
        if isinstance(value, list):
            return [_decode(v, tensors) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$tensor":
                return tensors[inner]
            if tag == "$tuple":
                return tuple(_decode(v, tensors) for v in inner)
            if tag == "$dict":
                return {_decode(k, tensors): _decode(v, tensors) for k, v in inner}
            if tag == "$float":
                return float(inner)
        return {k: _decode(v, tensors) for k, v in value.items()}
    except (KeyError, TypeError, ValueError, RecursionError) as err:
        raise UnreadableTensorFile(f"damaged tensor file tree ({type(err).__name__})") from None
