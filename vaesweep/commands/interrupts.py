"""Stopping cleanly: SIGTERM and SIGHUP handled like Ctrl-C, and runs left ``interrupted``.

Schedulers stop jobs with SIGTERM (SLURM preemption, ``timeout``, systemd) and a closed
terminal sends SIGHUP. Both become a :class:`KeyboardInterrupt` in the main process, so the
same path as Ctrl-C runs: the launcher stops its workers (joblib terminates its pool when the
call it is running is interrupted), the lock is held until they are gone, every run this
process left ``running`` is marked ``interrupted``, and the command prints how to resume.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from vaesweep.record import RunRecord, contract

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


def mark_interrupted(run_dirs: list[Path]) -> list[Path]:
    """Mark each run whose summary still says ``running`` as ``interrupted``; return them."""
    marked = []
    for run_dir in run_dirs:
        record = RunRecord(run_dir)
        summary = record.read_summary()
        if summary and summary.get("status") == contract.RUNNING:
            record.summary = summary
            record.update_summary(
                status=contract.INTERRUPTED,
                error="interrupted before it finished; resumable from its last checkpoint",
                error_kind=None,
            )
            marked.append(run_dir)
    return marked
