"""An exclusive lock on a sweep or run directory, so two drivers never write the same one.

It is an OS-level ``flock`` on ``<dir>/.lock``: the kernel releases it when the holder
exits, even on SIGKILL, so a crashed sweep never leaves a stale lock behind. A sweep's driver
holds the sweep's lock; each of its jobs holds its own run's (or, for a stack, its members')
while it trains, wherever the launcher runs it, so ``vaesweep train --resume RUN`` is refused
while any job trains RUN, even after the sweep's driver has gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from vaesweep.errors import UserError
from vaesweep.record.files import parse_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, run unguarded
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


def is_locked(directory: Path) -> bool:
    """Whether some process (this one included, through another open) holds ``directory``'s
    lock now."""
    path = Path(directory) / LOCK_FILE
    if fcntl is None or not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def holder_gone(directory: Path) -> bool:
    """Whether the last holder of ``directory``'s lock is known to be dead: it ran on this
    host, its process no longer exists, and nobody holds the lock now.

    A run whose summary still says ``running`` after its process was killed (SIGKILL, the
    OOM killer) is not training: this is how the views tell. Where that cannot be known (no
    lock file, a holder on another host, a process id in use again) it is not gone.
    """
    path = Path(directory) / LOCK_FILE
    try:
        info = parse_json(path.read_bytes() or b"{}")
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not 0 < pid <= _PID_MAX:  # a damaged file: 0 and -1 name groups, not one process
        return False
    if host != socket.gethostname() or _alive(pid):
        return False
    return not is_locked(directory)


#: The largest process id Linux hands out (``/proc/sys/kernel/pid_max`` is at most 2**22).
_PID_MAX = 2**22


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    return True


class SweepLock:
    def __init__(self, sweep_dir: Path, what: str = "sweep") -> None:
        self.path = Path(sweep_dir) / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise UserError(
                    f"{self.what} {self.path.parent} is in use by another vaesweep ({holder}); "
                    "wait for it to finish or stop it, then --resume"
                ) from None
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        # Write, then cut to length: the file never reads empty to a waiting competitor.
        os.pwrite(fd, info.encode(), 0)
        os.ftruncate(fd, len(info.encode()))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


#: How long a competitor waits for a brand-new holder to write who it is (seconds).
HOLDER_WAIT_S = 2.0


def _read_holder(fd: int) -> str:
    """Who holds the lock. A holder that took it a moment ago may not have written its
    details yet (two sweeps started together): wait briefly for them."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            info = parse_json(os.pread(fd, 4096, 0) or b"{}")
            since = time.strftime("%H:%M:%S", time.localtime(info["since"]))
            return f"pid {info['pid']} on {info['host']}, since {since}"
        except (ValueError, KeyError, TypeError, OSError, OverflowError):
            if time.monotonic() > deadline:
                return "a process that has not said who it is"
            time.sleep(0.01)
