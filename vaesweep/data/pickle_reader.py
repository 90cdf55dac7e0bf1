"""Reads the data out of a pickle without unpickling it: no callable named in it is ever called.

A pickle is a small program: its opcodes push values, build containers, and may name any
importable callable and call it (``os.system``, say). :func:`read_pickle` walks the opcodes
with :func:`pickletools.genops`, which only decodes them, and builds the values itself:
numbers, strings, bytes, lists, tuples, dicts and sets, plus numpy arrays, dtypes and scalars,
which it recognises by the names numpy's pickles use and builds from their raw bytes with
:func:`numpy.frombuffer`. Any other name, or any opcode that constructs an object
(``NEWOBJ``, ``INST``, persistent ids, extension codes, out-of-band buffers), stops the read
with :class:`Forbidden` naming it, before anything else happens. Object and structured dtypes
are refused too (their payload would be more pickled objects).

Used for CIFAR-10's "python version" batches (:mod:`vaesweep.data.cifar_pickle`), which are
pickles of a dict holding a uint8 array and lists: protocol 2 from Python 2's ``cPickle``
(the official files), and protocols 2 to 5 as Python 3 re-packs them.
"""

from __future__ import annotations

import math
import pickletools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np


class Forbidden(ValueError):
    """The pickle names a callable (or uses an opcode) outside what :func:`read_pickle` builds."""


@dataclass(frozen=True)
class _Name:
    """A global the pickle names (``GLOBAL``/``STACK_GLOBAL``); never imported or called."""

    module: str
    name: str


@dataclass
class _PendingArray:
    """``numpy...._reconstruct(ndarray, ...)``: the array's data comes with ``BUILD``."""

    value: np.ndarray | None = None


@dataclass
class _PendingDtype:
    """``numpy.dtype(code, align, copy)``: the byte order comes with ``BUILD``."""

    code: str
    value: np.dtype | None = None


_MARK = object()
_NUMPY = ("numpy.core", "numpy._core")
_RECONSTRUCT = {(f"{m}.multiarray", "_reconstruct") for m in _NUMPY}
_SCALAR = {(f"{m}.multiarray", "scalar") for m in _NUMPY}
_FROMBUFFER = {(f"{m}.numeric", "_frombuffer") for m in _NUMPY}
_CONSTANTS = {
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
    "EMPTY_DICT": dict,
    "EMPTY_LIST": list,
    "EMPTY_TUPLE": tuple,
    "EMPTY_SET": set,
}
_LITERALS = {
    # numbers, text and bytes: genops has decoded the argument already
    *("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
    *("UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"),
    *("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"),
}
_PY2_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}  # Python 2's str: read as bytes
_IGNORED = {"PROTO", "FRAME"}


def _dtype(value: Any) -> np.dtype:
    """A plain numeric dtype (no objects, no fields) from a dtype the pickle built."""
    if isinstance(value, _PendingDtype):
        value = value.value if value.value is not None else np.dtype(value.code)
    if not isinstance(value, np.dtype) or value.hasobject or value.names is not None:
        raise Forbidden(f"an array of dtype {value!r}")
    return value


def _array(raw: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    """The array of ``shape`` whose bytes are ``raw``; refused unless they match exactly."""
    if isinstance(raw, str):  # Python 2 pickles read without an encoding
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise Forbidden(f"array data of type {type(raw).__name__}")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"array shape {shape!r}")
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError(f"array of shape {shape} and dtype {dtype} with {len(raw)} bytes")
    flat = np.frombuffer(bytes(raw), dtype=dtype)
    if not dtype.isnative:  # as numpy's own unpickling gives it: the same values, native order
        flat = flat.astype(dtype.newbyteorder("="))
    return flat.reshape(shape, order="F" if fortran else "C")


def _reduce(fn: Any, args: Any) -> Any:
    """What calling ``fn(*args)`` would give, built here, for the few names numpy uses."""
    if not isinstance(fn, _Name) or not isinstance(args, tuple):
        raise Forbidden(f"a call of {fn!r}")
    key = (fn.module, fn.name)
    if key in _RECONSTRUCT and args and args[0] == _Name("numpy", "ndarray"):
        return _PendingArray()
    if key == ("numpy", "dtype") and args and isinstance(args[0], (str, bytes)):
        code = args[0].decode("latin1") if isinstance(args[0], bytes) else args[0]
        return _PendingDtype(code)
    if key in _SCALAR and len(args) == 2:
        dtype = _dtype(args[0])
        return _array(args[1], dtype, (), False)[()]
    if key in _FROMBUFFER and len(args) == 4:
        buffer, dtype, shape, order = args
        return _array(buffer, _dtype(dtype), shape, order == "F")
    if fn.module in _BUILTINS and fn.name in _CONTAINERS:
        return _container_call(fn.name, args)
    latin1 = len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")
    if key == ("_codecs", "encode") and latin1:
        return args[0].encode("latin1")  # how Python 3 writes bytes at protocol 2
    raise Forbidden(f"{fn.module}.{fn.name}")


#: Python 3's name of the builtins module, and Python 2's (which protocols 0-2 write).
_BUILTINS = ("builtins", "__builtin__")
#: Builtin types that protocols below 4 pickle as a call: ``set([1, 2])``, ``bytes()``.
_CONTAINERS = ("set", "frozenset", "bytes", "bytearray")


def _container_call(name: str, args: tuple[Any, ...]) -> Any:
    """``set(items)``, ``frozenset(items)``, ``bytes()``, ``bytearray(data[, "latin-1"])``."""
    if name in ("set", "frozenset") and len(args) <= 1:
        items = args[0] if args else []
        if not isinstance(items, list):
            raise ValueError(f"{name} of a {type(items).__name__}")
        made = (_hashable(i) for i in items)
        return set(made) if name == "set" else frozenset(made)
    if name == "bytes" and not args:
        return b""
    if name == "bytearray" and len(args) <= 2:
        if not args:
            return bytearray()
        data = args[0]
        if isinstance(data, str) and args[1:] in ((), ("latin-1",), ("latin1",)):
            return bytearray(data.encode("latin1"))
        if isinstance(data, bytes) and len(args) == 1:
            return bytearray(data)
    raise Forbidden(f"builtins.{name} with these arguments")


def _build(target: Any, state: Any) -> Any:
    """``BUILD``: numpy's ``__setstate__`` of a dtype or an array, done here."""
    if isinstance(target, _PendingDtype) and isinstance(state, tuple) and len(state) >= 2:
        if any(part is not None for part in state[2:5]):  # a sub-array or named fields
            raise Forbidden(f"an array of a structured dtype ({target.code})")
        order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        order = order if order in ("<", ">", "=", "|") else "="
        target.value = np.dtype(target.code).newbyteorder(cast(Any, "=" if order == "|" else order))
        return target
    if isinstance(target, _PendingArray) and isinstance(state, tuple) and len(state) == 5:
        _version, shape, dtype, fortran, raw = state
        target.value = _array(raw, _dtype(dtype), shape, bool(fortran))
        return target
    raise Forbidden(f"setting the state of {type(target).__name__}")


def _resolve(value: Any) -> Any:
    """Pending numpy values -> their arrays and dtypes, through containers."""
    if isinstance(value, _PendingArray):
        if value.value is None:
            raise ValueError("an array without its data")
        return value.value
    if isinstance(value, _PendingDtype):
        return _dtype(value)
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v) for v in value)
    if isinstance(value, dict):
        return {_resolve(k): _resolve(v) for k, v in value.items()}
    return value


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise ValueError("no MARK on the stack")


def read_pickle(raw: bytes) -> Any:
    """The value a pickle holds, built without calling anything it names (see the module).

    Raises :class:`Forbidden` for a callable or an opcode outside what is built here, and
    ValueError for bytes that are not a well-formed pickle.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    ops = cast("Iterator[tuple[Any, Any, Any]]", pickletools.genops(raw))
    for op, arg, _pos in ops:
        name = op.name
        if name in _IGNORED:
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise ValueError("the pickle ends with a malformed stack")
            return _resolve(stack.pop())
        if name in _LITERALS:
            stack.append(arg)
        elif name in _PY2_STRINGS:
            stack.append(arg.encode("latin1") if isinstance(arg, str) else arg)
        elif name == "BYTEARRAY8":
            stack.append(bytearray(arg))
        elif name in _CONSTANTS:
            made = _CONSTANTS[name]
            stack.append(made() if callable(made) else made)
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            if name == "INST":
                raise Forbidden(f"{module}.{attr}")
            stack.append(_Name(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(attr, str):
                raise ValueError("STACK_GLOBAL without two names")
            stack.append(_Name(module, attr))
        elif name == "REDUCE":
            args = stack.pop()
            stack.append(_reduce(stack.pop(), args))
        elif name == "BUILD":
            state = stack.pop()
            stack.append(_build(stack.pop(), state))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(_pop_mark(stack)))
        elif name == "LIST":
            stack.append(_pop_mark(stack))
        elif name == "DICT":
            items = _pop_mark(stack)
            stack.append(dict(zip(items[::2], items[1::2])))
        elif name == "APPEND":
            item = stack.pop()
            _container(stack[-1], list).append(item)
        elif name == "APPENDS":
            items = _pop_mark(stack)
            _container(stack[-1], list).extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _container(stack[-1], dict)[_hashable(key)] = value
        elif name == "SETITEMS":
            items = _pop_mark(stack)
            target = _container(stack[-1], dict)
            for key, value in zip(items[::2], items[1::2]):
                target[_hashable(key)] = value
        elif name == "ADDITEMS":
            items = _pop_mark(stack)
            _container(stack[-1], set).update(_hashable(i) for i in items)
        elif name == "FROZENSET":
            stack.append(frozenset(_hashable(i) for i in _pop_mark(stack)))
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            _pop_mark(stack)
        elif name == "DUP":
            stack.append(stack[-1])
        else:  # NEWOBJ, NEWOBJ_EX, OBJ, PERSID, BINPERSID, EXT*, NEXT_BUFFER, READONLY_BUFFER
            raise Forbidden(f"the opcode {name}")
    raise ValueError("the pickle has no STOP")


def _container(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{kind.__name__} expected, found {type(value).__name__}")
    return value


def _hashable(key: Any) -> Any:
    if not isinstance(key, (str, bytes, int, float, bool, type(None), tuple)):
        raise ValueError(f"a key of type {type(key).__name__}")
    return key
