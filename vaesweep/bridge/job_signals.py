"""SIGTERM and SIGHUP as Ctrl-C, in the driver and in every job process.

Schedulers stop jobs with SIGTERM: SLURM's ``scancel`` and preemption (then SIGKILL after
``KillWait``), ``timeout``, systemd; a closed terminal sends SIGHUP. Inside
:func:`stop_signals_as_interrupt` both raise :class:`KeyboardInterrupt` in the main thread,
so a run stops the way Ctrl-C stops it and its record says ``interrupted``, resumable from
its last checkpoint. submitit's own SIGTERM handler only logs the signal ("bypassing"); it
is restored when the job's run ends. SIGUSR2 (submitit's time-limit checkpoint and requeue)
is left to submitit.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

#: Signals treated like Ctrl-C.
STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s
)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise KeyboardInterrupt (main thread only)."""
    saved = {}
    try:
        for sig in STOP_SIGNALS:
            saved[sig] = signal.signal(sig, _raise)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
