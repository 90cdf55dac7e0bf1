"""A tracker that runs in a child process, so the training process never imports its package.

MLflow costs a run about 2 s of CPU before it logs anything (its import, then the SQLAlchemy
store's schema check) and holds the GIL for every call after that; in a thread of the training
process all of it competes with training. Here the training process only starts
``python -m vaesweep.tracking.worker`` and sends it what the record wrote; the child imports
and logs on another core, at a lower priority than training (:data:`NICE`). One child serves
every run of its process (a stack of runs, or runs trained one after another) and stays up,
idle, until the process exits, so the import is paid once per process.

The child can be started before the run, as soon as a command knows a run will train in this
process (:func:`start_early`, called by :func:`vaesweep.tracking.session.preflight`): its
import then overlaps the command's own start-up (torch's import, the data), which uses one core.

Wire format, no pickle: a message is a 4-byte big-endian length and a JSON header; the
header's ``blobs`` lists the byte lengths of raw payloads that follow it (uint8 image grids).
Every request gets one reply, ``{"ok": true}`` or ``{"error": "<Type>: <first line>"}``, so a
call fails exactly when the tracker failed, and :class:`~vaesweep.tracking.fanout.Trackers`
warns once and drops it. Before its reply a request may get one notice,
``{"retrying": "<why>"}``: its store does not answer and MLflow retries (for minutes), which
the run's end does not wait for (:attr:`ProcessTracker.unreachable`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from vaesweep.tracking.base import RunInfo

#: How much lower than the run the child runs (``nice``): training comes first; the child
#: fills the gaps, and has a core to itself while the run waits for it at the end.
NICE = 10
_HEADER = 4
_PATH_FIELDS = ("run_dir", "sweep_dir", "outputs_root")


class RemoteError(RuntimeError):
    """A call that failed in the tracker's process; the message is the child's own first line."""


# ---------------------------------------------------------------------- wire format


def write_message(stream: IO[bytes], header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    """One message: length, JSON header (with ``blobs``: their lengths), then the blobs."""
    data = json.dumps({**header, "blobs": [len(b) for b in blobs]}, default=_plain).encode()
    stream.write(len(data).to_bytes(_HEADER, "big") + data)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """The next message; EOFError when the other side has closed the pipe."""
    size = int.from_bytes(_read_exactly(stream, _HEADER), "big")
    header = json.loads(_read_exactly(stream, size))
    blobs = [_read_exactly(stream, int(n)) for n in header.pop("blobs", [])]
    return header, blobs


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError("the tracker's pipe was closed")
    return data


def _plain(value: Any) -> Any:
    """JSON for what the record holds besides plain values: numpy scalars, paths."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def info_to_json(info: RunInfo) -> dict[str, Any]:
    out = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    for key in _PATH_FIELDS:
        out[key] = None if out[key] is None else str(out[key])
    return out


def info_from_json(data: dict[str, Any]) -> RunInfo:
    values = dict(data)
    for key in _PATH_FIELDS:
        values[key] = None if values.get(key) is None else Path(values[key])
    return RunInfo(**values)


def images_to_wire(images: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], list[bytes]]:
    arrays = {k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in images.items()}
    meta = [{"name": k, "shape": list(a.shape)} for k, a in arrays.items()]
    return meta, [a.tobytes() for a in arrays.values()]


def images_from_wire(meta: list[dict[str, Any]], blobs: list[bytes]) -> dict[str, np.ndarray]:
    return {
        m["name"]: np.frombuffer(b, dtype=np.uint8).reshape([int(s) for s in m["shape"]])
        for m, b in zip(meta, blobs, strict=True)
    }


# ---------------------------------------------------------------------- the child


class _Child:
    """One child process and the lock that keeps its requests and replies in pairs."""

    def __init__(self, name: str, cfg: Any, uri_hint: str | None) -> None:
        spec = {"tracker": name, "config": dataclasses.asdict(cfg), "uri_hint": uri_hint}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vaesweep.tracking.worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.lock = threading.Lock()
        self.users = 0
        #: While the current call is retried because its store does not answer: why.
        self.retrying: str | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, header: dict[str, Any], blobs: Sequence[bytes]) -> dict[str, Any]:
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        with self.lock:
            try:
                write_message(proc.stdin, header, blobs)
                reply = self._reply()
            except (OSError, EOFError, ValueError) as err:
                raise self._lost(err) from None
            finally:
                self.retrying = None
        return reply

    def _reply(self) -> dict[str, Any]:
        """The next reply; a notice before it (its store does not answer, MLflow retries) is
        kept in :attr:`retrying` meanwhile."""
        assert self.proc.stdout is not None
        reply, _ = read_message(self.proc.stdout)
        while "retrying" in reply:
            self.retrying = str(reply["retrying"])
            reply, _ = read_message(self.proc.stdout)
        return reply

    def _lost(self, err: Exception) -> RemoteError:
        code = self.proc.poll()
        gone = isinstance(err, (EOFError, BrokenPipeError))
        if code is None and gone:  # its pipe closes as it exits: let the exit finish
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(EXIT_WAIT_S)
        if code is None and not gone:
            return RemoteError(f"{type(err).__name__}: {err}")
        return RemoteError("the tracker's process exited" + (f" with code {code}" if code else ""))

    def close(self, wait_s: float) -> None:
        """Close its input (it exits when idle); killed if still busy after ``wait_s``."""
        proc = self.proc
        if wait_s > 0 and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


#: This process's children, by tracker and settings; idle ones wait for the next run.
_CHILDREN: dict[str, _Child] = {}
#: The process they belong to: a process forked from it must not write to their pipes.
_OWNER = os.getpid()
_REGISTRY_LOCK = threading.Lock()
_IDS = itertools.count(1)
#: Longest wait for an idle child to exit when this process ends.
EXIT_WAIT_S = 10.0


def _key(name: str, cfg: Any) -> str:
    return json.dumps([name, dataclasses.asdict(cfg)], sort_keys=True, default=str)


def _child(name: str, cfg: Any, uri_hint: str | None, use: bool = True) -> _Child:
    """The live child for ``(name, cfg)``, started if needed (other idle ones are closed);
    ``use``: count the caller among its users."""
    global _OWNER
    key = _key(name, cfg)
    with _REGISTRY_LOCK:
        if os.getpid() != _OWNER:  # forked: the children are the parent's
            _CHILDREN.clear()
            _OWNER = os.getpid()
        child = _CHILDREN.get(key)
        if child is None or not child.alive():
            for other in [k for k, c in _CHILDREN.items() if c.users == 0 and k != key]:
                _CHILDREN.pop(other).close(EXIT_WAIT_S)
            child = _CHILDREN[key] = _Child(name, cfg, uri_hint)
        child.users += int(use)
        return child


def start_early(name: str, cfg: Any, uri_hint: str | None) -> None:
    """Start the child for ``(name, cfg)`` now, so its import overlaps the run's start-up.

    ``uri_hint``: the store the run will most likely use; the child opens it while it waits.
    """
    _child(name, cfg, uri_hint, use=False)


@atexit.register
def close_all() -> None:
    """At exit: let idle children finish (they have logged everything they were sent)."""
    with _REGISTRY_LOCK:
        children = list(_CHILDREN.values()) if os.getpid() == _OWNER else []
        _CHILDREN.clear()
    for child in children:
        child.close(EXIT_WAIT_S)


class ProcessTracker:
    """A :class:`~vaesweep.tracking.base.Tracker` whose work is done by a child process.

    Each call is sent to the child and waits for its reply, in the fan-out's worker thread
    (blocked on a pipe, without the GIL); a failure in the child raises :class:`RemoteError`.
    """

    def __init__(
        self, name: str, cfg: Any, min_interval_s: float, uri_hint: str | None = None
    ) -> None:
        self.name, self.cfg, self.min_interval_s = name, cfg, min_interval_s
        self.uri_hint = uri_hint
        self._id = f"{next(_IDS)}"
        self._child: _Child | None = None

    def prepare(self) -> None:
        self._child = _child(self.name, self.cfg, self.uri_hint)

    @property
    def unreachable(self) -> str | None:
        """Why the call in progress waits on a store that does not answer (None: it does not)."""
        child = self._child
        return child.retrying if child is not None else None

    def _call(self, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
        if self._child is None:
            raise RemoteError("the tracker's process was not started")
        reply = self._child.call({**header, "id": self._id}, list(blobs))
        if "error" in reply:
            raise RemoteError(str(reply["error"]))

    def on_start(self, info: RunInfo) -> None:
        self._call({"call": "on_start", "info": info_to_json(info)})

    def on_epoch(self, rows: list[dict[str, Any]]) -> None:
        self._call({"call": "on_epoch", "rows": rows})

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        meta, blobs = images_to_wire(images)
        self._call({"call": "on_images", "epoch": epoch, "step": step, "images": meta}, blobs)

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        self._call({"call": "on_end", "status": status, "summary": summary})

    def close(self, wait_s: float) -> None:
        """This run is done with the child: it stays up for the next run of this process.

        ``wait_s <= 0`` (the run gave up waiting for it) kills it: it is stuck.
        """
        child, self._child = self._child, None
        if child is None:
            return
        with _REGISTRY_LOCK:
            child.users -= 1
        if wait_s <= 0:
            with _REGISTRY_LOCK:
                if _CHILDREN.get(_key(self.name, self.cfg)) is child:
                    del _CHILDREN[_key(self.name, self.cfg)]
            child.close(0.0)
