"""``python -m vaesweep.tracking.worker SPEC``: the child process of a
:class:`~vaesweep.tracking.process.ProcessTracker`.

``SPEC`` is JSON: ``{"tracker": "mlflow", "config": {...}, "uri_hint": ...}``. The child lowers
its priority, imports the tracker's package (without the packages it does not need here,
:data:`HIDDEN`) and opens the hinted store at once, then answers requests on stdin (each names
the run it is for: one child serves every run of its parent) until stdin closes, then exits
without the interpreter's teardown (:func:`exit_now`). Replies go to what was stdout; anything
else printed goes to stderr.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import IO, Any

from vaesweep.config.tracker import MlflowConfig
from vaesweep.tracking.base import Tracker
from vaesweep.tracking.process import (
    NICE,
    images_from_wire,
    info_from_json,
    read_message,
    write_message,
)


def _mlflow(config: dict[str, Any], uri_hint: str | None) -> Tracker:
    from vaesweep.tracking.mlflow import MlflowTracker

    return MlflowTracker(MlflowConfig(**config), uri_hint=uri_hint)


#: The trackers that run in a child process: name -> factory(config section, store hint).
TRACKERS: dict[str, Callable[[dict[str, Any], str | None], Tracker]] = {"mlflow": _mlflow}

#: Packages a tracker's process hides from the tracker's package, by tracker; each is an
#: optional import its importer guards, and nothing a run logs uses it. MLflow imports pandas
#: only to offer pandas datasets (mlflow-skinny runs without it): 0.6 s of CPU per process.
#: Mako (alembic's templates, under MLflow's SQL store) imports pygments only to colour its
#: template error pages, and falls back to plain text: 0.12 s.
HIDDEN: dict[str, tuple[str, ...]] = {"mlflow": ("pandas", "pygments")}


#: Loggers of the tracker's libraries that report each retry of a failing store or server.
QUIET_LOGGERS = ("urllib3", "mlflow.store.db.utils", "mlflow.utils.rest_utils")


class HiddenPackages(importlib.abc.MetaPathFinder):
    """Makes ``import <package>`` fail in this process, as where it is not installed."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = frozenset(packages)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:300]


#: The logger that reports each retry of a request (``Incremented Retry for (url=...): <Retry>``,
#: the Retry's history ending with what failed), whatever store the tracker talks to.
RETRY_LOGGER = "urllib3.util.retry"
#: Answers that mean the server is gone behind its proxy (retried like a refused connection);
#: others that MLflow retries (429 throttling, 500) come from a server that is there.
GONE_STATUSES = (502, 503, 504)


class RetryNotices(logging.Handler):
    """Sends the run one ``{"retrying": why}`` notice per request whose server does not answer
    (a connection refused, reset or timed out; a proxy's 502-504).

    MLflow retries such a request for minutes; the notice lets the run's end stop waiting
    for it. Only the thread that answers requests writes to ``replies``.
    """

    def __init__(self, replies: IO[bytes]) -> None:
        super().__init__(logging.DEBUG)
        self.replies = replies
        self.sent = True  # quiet until a request is being answered

    def emit(self, record: logging.LogRecord) -> None:
        if self.sent or threading.current_thread() is not threading.main_thread():
            return
        args = record.args if isinstance(record.args, tuple) else ()
        history = getattr(args[-1], "history", None) if args else None
        if not history:
            return
        last = history[-1]
        if last.error is not None:
            why = _describe(last.error)
        elif last.status in GONE_STATUSES:
            why = f"the server answers {last.status} to {last.method} {last.url}"
        else:
            return
        self.sent = True
        with contextlib.suppress(OSError, ValueError):
            write_message(self.replies, {"retrying": why})


def watch_retries(replies: IO[bytes]) -> RetryNotices:
    """This process's :class:`RetryNotices` on ``replies`` (for :func:`serve`)."""
    notices = RetryNotices(replies)
    logger = logging.getLogger(RETRY_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # its debug lines are for the notices only
    logger.addHandler(notices)
    return notices


class _Runs:
    """The trackers of the runs being logged, by the id each request carries."""

    def __init__(self, make: Callable[[], Tracker]) -> None:
        self.make = make
        self.trackers: dict[str, Tracker] = {}
        self.failed: dict[str, str] = {}
        #: A failure of the shared preparation (the package's import): every run gets it.
        self.broken: str | None = None

    def prepare(self) -> None:
        try:
            self.make().prepare()
        except Exception as err:  # told to each run in its first reply
            self.broken = _describe(err)

    def handle(self, header: dict[str, Any], blobs: list[bytes]) -> dict[str, Any]:
        run = str(header.get("id"))
        error = self.broken or self.failed.get(run)
        if error is None:
            try:
                self._dispatch(run, header, blobs)
            except Exception as err:  # the parent warns once and stops sending
                error = self.failed[run] = _describe(err)
                self.trackers.pop(run, None)
        return {"error": error} if error else {"ok": True}

    def _dispatch(self, run: str, header: dict[str, Any], blobs: list[bytes]) -> None:
        call = header["call"]
        if call == "on_start":
            tracker = self.trackers[run] = self.make()
            tracker.on_start(info_from_json(header["info"]))
        elif call == "on_epoch":
            self.trackers[run].on_epoch(header["rows"])
        elif call == "on_images":
            images = images_from_wire(header["images"], blobs)
            self.trackers[run].on_images(int(header["epoch"]), int(header["step"]), images)
        elif call == "on_end":
            self.trackers.pop(run).on_end(str(header["status"]), header["summary"])
        else:
            raise ValueError(f"unknown call {call!r}")


def serve(
    spec: dict[str, Any],
    requests: IO[bytes],
    replies: IO[bytes],
    notices: RetryNotices | None = None,
) -> None:
    """Answer requests until ``requests`` closes; ``notices`` (the child's, on ``replies``) may
    send one retry notice while a request is being answered."""
    factory = TRACKERS[spec["tracker"]]
    hidden = HIDDEN.get(spec["tracker"], ())
    if hidden and not any(name.partition(".")[0] in hidden for name in sys.modules):
        sys.meta_path.insert(0, HiddenPackages(hidden))
    hint = spec.get("uri_hint")
    runs = _Runs(lambda: factory(spec.get("config") or {}, hint))
    runs.prepare()
    while True:
        try:
            header, blobs = read_message(requests)
        except EOFError:
            return
        if notices is not None:
            notices.sent = False
        reply = runs.handle(header, blobs)
        if notices is not None:
            notices.sent = True
        if not _answer(replies, reply):
            return


def _answer(replies: IO[bytes], reply: dict[str, Any]) -> bool:
    """Send ``reply``; False when the run's process is gone (killed): nobody is left to answer."""
    try:
        write_message(replies, reply)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    # The run decides when its trackers stop: on Ctrl-C or a launcher's SIGTERM it sends the
    # final status first, then closes the pipe (which also ends this process if the run dies).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    warnings.simplefilter("ignore")  # the parent's record is the source of truth
    logging.basicConfig(level=logging.WARNING, format="vaesweep tracker: %(message)s")
    # A store that fails makes these log every retry (a line every few seconds for minutes);
    # the run reports the failure itself, once (fanout), when the call finally fails.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot garble replies
    serve(spec, sys.stdin.buffer, replies, watch_retries(replies))
    return 0


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    Every request was answered only once it was stored (the tracker's calls are synchronous),
    so nothing is left to write; a normal exit after MLflow's import spends about 0.9 s
    tearing its modules down, and the run waits for this process to exit.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
