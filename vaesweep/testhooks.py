"""Test hooks: let the test suite pause or forbid training through environment variables.

Nothing here is a user feature; with neither variable set (always, outside the test suite)
:func:`after_epoch` returns at once. The suite uses them so interrupt tests wait for a state
instead of racing the clock, and so its fast tier cannot train by accident:

``VAESWEEP_TEST_HOLD=<dir>``
    After writing epoch N's record (metrics row and checkpoint, flushed to disk), a run
    creates the marker ``<dir>/<run name>.epoch<N>`` and waits until the marker is removed
    (release this hold) or ``<dir>/release`` exists (release this and every later hold), or
    until the process is signalled. A test can therefore SIGINT/SIGKILL a run at a known
    epoch, or step it epoch by epoch, on a machine of any speed. A hold gives up after
    :data:`MAX_HOLD_S` so a run orphaned by a crashed test still ends.
``VAESWEEP_TEST_FORBID_TRAINING=<reason>``
    A run that finishes an epoch raises ``RuntimeError(reason)``: set by ``tests/conftest.py``
    for tests not marked ``slow``, so a subprocess they start cannot train unnoticed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

HOLD_ENV = "VAESWEEP_TEST_HOLD"
FORBID_ENV = "VAESWEEP_TEST_FORBID_TRAINING"
#: Name of the file in the hold folder that releases every hold.
RELEASE_ALL = "release"
#: Longest a single hold waits (seconds); far beyond any test's patience.
MAX_HOLD_S = 900.0
#: Set when a signal stopped the main thread while a hold may be waiting in another thread
#: (a stack's parts train in threads, :mod:`vaesweep.run.stack_parts`): holds end at once.
HOLDS_RELEASED = threading.Event()
_POLL_S = 0.05


def after_epoch(run_name: str, epoch: int, flush: Callable[[], None]) -> None:
    """Called by a run after epoch ``epoch``'s record is written; a no-op outside tests.

    ``flush`` makes the record durable (background checkpoint write joined) before a hold,
    so a test that kills the held process finds the checkpoint of ``epoch`` on disk.
    """
    forbid = os.environ.get(FORBID_ENV)
    if forbid:
        raise RuntimeError(forbid)
    hold = os.environ.get(HOLD_ENV)
    if not hold:
        return
    folder = Path(hold)
    flush()
    marker = folder / f"{run_name}.epoch{epoch}"
    folder.mkdir(parents=True, exist_ok=True)
    marker.touch()
    deadline = time.monotonic() + MAX_HOLD_S
    while marker.exists() and not (folder / RELEASE_ALL).exists():
        if time.monotonic() > deadline or HOLDS_RELEASED.is_set():
            break
        time.sleep(_POLL_S)  # a signal (Ctrl-C, SIGTERM handler) interrupts this sleep
