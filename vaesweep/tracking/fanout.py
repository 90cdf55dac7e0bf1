"""Several trackers behind one object, each in its own thread, none able to stop the run.

The run's record writer calls :class:`Trackers` after each write; the calls are queued and
return at once. Each tracker's worker thread runs them in order; the first exception (a
server gone, a full disk) is logged once as a warning, the tracker is dropped, and the run
goes on with its record intact. At the end the run waits for the queues to drain (at most
:data:`END_WAIT_S`), so a finished run's trackers hold everything its record holds; but not
for a tracker that says its store does not answer (``unreachable``: MLflow retrying a server
that is gone), which would hold the run for minutes.

MLflow writes a local SQLite store from its thread here, and any other store from a child
process (:mod:`~vaesweep.tracking.mlflow_route`): MLflow's import, its client and its calls
would otherwise compete with training for the GIL.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vaesweep.config.tracker import TrackerConfig
from vaesweep.record import contract
from vaesweep.tracking.base import RunInfo, Tracker
from vaesweep.tracking.packages import require_packages
from vaesweep.tracking.process import RemoteError

log = logging.getLogger("vaesweep.tracking")

#: Longest wait for a tracker to finish logging once the run has ended.
END_WAIT_S = 120.0
#: The same wait when the run was interrupted (Ctrl-C): what is logged by then stays logged.
INTERRUPTED_WAIT_S = 5.0
#: Seconds between two looks, while the run waits for a tracker, at whether its store answers.
_POLL_S = 0.5
#: Longest wait for a tracker's thread to end once what it holds is closed (killed).
_AFTER_CLOSE_S = 5.0
_STOP = object()


class _Worker:
    """One tracker's queue and thread.

    Rows that queue up while the tracker is busy, or within its ``min_interval_s`` of the
    last write, go out together in one ``on_epoch`` call (each still at its own step): one
    database transaction for several epochs instead of one each. Image grids queued among
    them follow that call.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.failed = False
        #: The run has stopped waiting for it (its end): a failure now is no news.
        self.abandoned = False
        self.interval = float(getattr(tracker, "min_interval_s", 0.0))
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ending = threading.Event()
        self._deadline = math.inf
        self._last_rows = -math.inf
        self.thread = threading.Thread(
            target=self._loop, name=f"vaesweep-tracker-{tracker.name}", daemon=True
        )
        self.thread.start()

    def put(self, method: str, *args: Any) -> None:
        if not self.failed:
            self.queue.put((method, args))

    def _loop(self) -> None:
        pending: Any = None
        while True:
            item, pending = (pending if pending is not None else self.queue.get()), None
            if item is _STOP:
                if not self.abandoned:  # else stop() has closed it already
                    self._close(self._deadline - time.monotonic())
                return
            method, args = item
            if self.failed:
                continue
            if method != "on_epoch":
                self._call(method, args)
                continue
            rows, grids, pending = self._gather(list(args[0]))
            self._call(method, (rows,))
            for grid in grids:
                if not self.failed:
                    self._call(*grid)

    def _gather(self, rows: list[Any]) -> tuple[list[Any], list[Any], Any]:
        """``rows`` plus those of every ``on_epoch`` queued behind them; the ``on_images``
        queued among them (sent after the rows, each at its own step); the next other item."""
        wait = self._last_rows + self.interval - time.monotonic()
        if wait > 0:
            self._ending.wait(wait)  # cut short when the run ends
        self._last_rows = time.monotonic()
        grids: list[Any] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return rows, grids, None
            if item is _STOP or item[0] not in ("on_epoch", "on_images"):
                return rows, grids, item
            if item[0] == "on_epoch":
                rows += item[1][0]
            else:
                grids.append(item)

    def _call(self, method: str, args: tuple[Any, ...]) -> None:
        try:
            getattr(self.tracker, method)(*args)
        except Exception as err:  # any failure of a tracker must leave the run alone
            self.failed = True
            if self.abandoned:  # the run stopped waiting for it, and said why
                return
            message = str(err) if isinstance(err, RemoteError) else f"{type(err).__name__}: {err}"
            message = message.splitlines()[0][:300] if message else type(err).__name__
            log.warning(
                "tracker %s failed in %s (%s); the run goes on without it, its record is intact",
                self.tracker.name,
                method,
                message,
            )

    def _close(self, wait_s: float) -> None:
        """The tracker's optional ``close(wait_s)``: release what it holds (a child process)."""
        close = getattr(self.tracker, "close", None)
        if close is None:
            return
        try:
            close(wait_s)
        except Exception as err:  # the run is over; its record is complete
            log.warning("tracker %s did not close cleanly (%s)", self.tracker.name, err)

    def stop(self, deadline: float) -> str | None:
        """Let the queue drain until ``deadline``. None once it has; else the run stops
        waiting, kills what the tracker holds and returns why: the tracker's word that its
        store does not answer (``unreachable``: MLflow would retry for minutes), or ``""``
        when it is still busy at ``deadline``."""
        self._deadline = deadline
        self._ending.set()
        self.queue.put(_STOP)
        while True:
            left = deadline - time.monotonic()
            self.thread.join(min(max(0.0, left), _POLL_S))
            if not self.thread.is_alive():
                return None
            why = getattr(self.tracker, "unreachable", None)
            if why or left <= 0:
                break
        self.abandoned = True
        self._close(0.0)  # a stuck tracker: stop it (a child process is killed)
        # Its call fails at once now. The thread must end before the process does: a daemon
        # thread still freeing the run's arrays (torch's memory) at exit aborts the process.
        self.thread.join(_AFTER_CLOSE_S)
        return str(why or "")


class Trackers:
    """The trackers a run's config turns on; falsy (and free) when none is."""

    def __init__(self, trackers: Sequence[Tracker], image_every: int = 0) -> None:
        self.image_every = image_every
        self._workers = [_Worker(t) for t in trackers]
        for w in self._workers:
            w.put("prepare")  # imports and connections overlap the run's setup
        self._started = False

    @classmethod
    def from_config(cls, cfg: TrackerConfig | None) -> Trackers:
        """The trackers of ``cfg``; raises a one-line UserError when a package is missing."""
        if cfg is None or not cfg.names:
            return cls([])
        require_packages(cfg.names)
        made: list[Tracker] = []
        for name in cfg.names:
            made.append(_FACTORIES[name](getattr(cfg, name)))
        return cls(made, cfg.image_every)

    def __bool__(self) -> bool:
        return bool(self._workers)

    @property
    def names(self) -> list[str]:
        return [w.tracker.name for w in self._workers]

    def _put(self, method: str, *args: Any) -> None:
        for w in self._workers:
            w.put(method, *args)

    def start(self, info: RunInfo) -> None:
        self._started = True
        self._put("on_start", info)

    def epoch(self, rows: list[dict[str, Any]]) -> None:
        """The rows just appended to metrics.csv (copied: the record keeps its own)."""
        self._put("on_epoch", [dict(r) for r in rows])

    def wants_images(self, epoch: int, last_epoch: int) -> bool:
        if not self._workers or not self._started:
            return False
        every = self.image_every
        return epoch == last_epoch or (every > 0 and epoch % every == 0)

    def images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        self._put("on_images", epoch, step, images)

    def end(self, status: str, summary: dict[str, Any], wait_s: float = END_WAIT_S) -> None:
        """Send the final status and wait (bounded) until every tracker has logged it all.

        A run that ends still ``running`` was stopped (Ctrl-C, a launcher's SIGTERM): its
        trackers say ``interrupted``, as its record does once the command has marked it.
        """
        if status == contract.RUNNING:
            status = contract.INTERRUPTED
        if self._started:
            self._put("on_end", status, {**summary, "status": status})
        deadline = time.monotonic() + wait_s
        for w in self._workers:
            why = w.stop(deadline)
            if why == "":
                log.warning(
                    "tracker %s is still busy %.0f s after the run ended; leaving it (the "
                    "run's record is complete)",
                    w.tracker.name,
                    wait_s,
                )
            elif why:
                log.warning(
                    "tracker %s cannot reach its store (%s); the run does not wait for it, "
                    "its record is complete",
                    w.tracker.name,
                    why,
                )
        self._workers = []


def _tensorboard(cfg: Any) -> Tracker:
    from vaesweep.tracking.tensorboard import TensorBoardTracker

    return TensorBoardTracker(cfg)


def _mlflow(cfg: Any) -> Tracker:
    from vaesweep.tracking.mlflow_route import MlflowRoute

    return MlflowRoute(cfg)


_FACTORIES: dict[str, Callable[[Any], Tracker]] = {"tensorboard": _tensorboard, "mlflow": _mlflow}
