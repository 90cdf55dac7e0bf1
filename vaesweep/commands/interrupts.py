"""Stopping cleanly: SIGTERM and SIGHUP handled like Ctrl-C, and runs left ``interrupted``.

Schedulers stop jobs with SIGTERM (SLURM preemption, ``timeout``, systemd) and a closed
terminal sends SIGHUP. Both become a :class:`KeyboardInterrupt` in the main process, so the
same path as Ctrl-C runs: the launcher stops its workers (joblib terminates its pool when the
call it is running is interrupted), the lock is held until they are gone, every run this
process left ``running`` is marked ``interrupted``, and the command prints how to resume.
Each job does the same in its own process (:mod:`vaesweep.bridge.job_signals`): a SLURM job
cancelled with ``scancel`` or preempted gets SIGTERM and marks its run ``interrupted`` before
slurmd kills it.
"""

from __future__ import annotations

from vaesweep.bridge.job_signals import STOP_SIGNALS, stop_signals_as_interrupt
from vaesweep.record.sweep_index import mark_interrupted

__all__ = ["STOP_SIGNALS", "mark_interrupted", "stop_signals_as_interrupt"]
