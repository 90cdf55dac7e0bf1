"""The sweep's progress: runs done / total, statuses so far, elapsed time and an estimate.

A background thread polls the run directories (the same files ``report`` reads), so it works
for every launcher, including SLURM jobs on a shared filesystem. It prints one line each time
a run finishes; on a terminal a live line below them shows the runs in progress and their
epochs. The estimate counts epochs rather than runs, so it is useful before the first run
finishes and when runs finish together: (epochs left) x (seconds per epoch so far), where the
rate is measured since this launch started (a resumed sweep's earlier epochs do not count).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from vaesweep.commands.terminal_tables import status_colour
from vaesweep.errors import UserError
from vaesweep.record.contract import FINISHED, PENDING, RUNNING
from vaesweep.record.sweep_index import refresh_index, run_status
from vaesweep.record.sweep_plan import SweepPlan

#: Runs named on the live line before "+N more".
LIVE_RUNS = 3


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True)
class RunProgress:
    status: str
    epochs_done: int
    epochs: int | None  # None until the run has written its summary


@dataclass(frozen=True)
class Snapshot:
    """One poll of every planned run, in plan order."""

    runs: dict[str, RunProgress]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def announced(self, seen: dict[str, str]) -> Snapshot:
        """This poll as the printed lines tell it: a run that finished but is not yet
        announced (``seen``: the runs announced so far) still counts as running."""
        return Snapshot(
            {
                name: RunProgress(RUNNING, r.epochs_done, r.epochs)
                if r.status in FINISHED and name not in seen
                else r
                for name, r in self.runs.items()
            }
        )

    def epochs(self) -> tuple[int, int]:
        """(epochs done, epochs planned); finished runs count as done, and runs that have not
        started count the typical length of those that have."""
        known = [r.epochs for r in self.runs.values() if r.epochs]
        typical = round(sum(known) / len(known)) if known else 0
        done = total = 0
        for r in self.runs.values():
            length = r.epochs or typical
            total += length
            done += length if r.status in FINISHED else min(r.epochs_done, length)
        return done, total


def estimate_left(start: Snapshot, now: Snapshot, elapsed: float) -> float | None:
    """Seconds left at the rate of epochs finished since ``start``; None before any."""
    done0, _ = start.epochs()
    done, total = now.epochs()
    if done <= done0 or elapsed <= 0:
        return None
    return elapsed * (total - done) / (done - done0)


class SweepMonitor:
    def __init__(
        self,
        sweep_dir: Path,
        plan: SweepPlan,
        console: Console,
        poll_s: float = 0.5,
        *,
        live: bool = True,
    ) -> None:
        """``live``: show the live line on a terminal (not while runs draw their own bars)."""
        self.sweep_dir, self.plan, self.console, self.poll_s = sweep_dir, plan, console, poll_s
        self.live = live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vaesweep-monitor", daemon=True)
        self._seen: dict[str, str] = {}
        self._start = time.monotonic()
        self._first: Snapshot | None = None
        self._live: Live | None = None
        #: The last poll, to rebuild runs.csv when a run starts or ends an epoch.
        self._last: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        runs = {}
        for r in self.plan.runs:
            status, summary = run_status(self.sweep_dir / r.name)
            s = summary or {}
            epochs = int(s["epochs"]) if s.get("epochs") else None
            runs[r.name] = RunProgress(status, int(s.get("epochs_done") or 0), epochs)
        return Snapshot(runs)

    def start(self) -> SweepMonitor:
        self._first = self._last = self.snapshot()
        self._seen = {k: r.status for k, r in self._first.runs.items() if r.status in FINISHED}
        self._start = time.monotonic()
        if self.live and self.console.is_terminal:
            self._live = Live(
                Text(""), console=self.console, transient=True, auto_refresh=False
            ).__enter__()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()  # report runs that finished since the last poll
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll()

    def _poll(self) -> None:
        now = self.snapshot()
        if now != self._last:
            # runs.csv shows the runs that have started, not only the finished ones (the
            # jobs rebuild it as they end); best effort, it is only a view of the run files.
            self._last = now
            with contextlib.suppress(OSError, UserError):
                refresh_index(self.sweep_dir)
        total = len(now.runs)
        for name, run in now.runs.items():
            if run.status in FINISHED and self._seen.get(name) != run.status:
                self._seen[name] = run.status
                # Count what has been reported so far, so runs finishing in the same poll
                # get consecutive numbers and counts that agree with them.
                done = sum(1 for s in self._seen.values() if s in FINISHED)
                told = now.announced(self._seen)
                self.console.print(self.finished_line(name, run.status, done, total, told))
        if self._live is not None:
            self._live.update(self.live_line(now), refresh=True)

    def _timing(self, now: Snapshot, finished: bool) -> str:
        elapsed = time.monotonic() - self._start
        left = estimate_left(self._first or now, now, elapsed)
        tail = f", ~{_clock(left)} left" if left is not None and not finished else ""
        return f"{_clock(elapsed)} elapsed{tail}"

    def finished_line(self, name: str, status: str, done: int, total: int, now: Snapshot) -> Text:
        counts = now.counts()
        summary = ", ".join(
            f"{counts[k]} {k}" for k in (*FINISHED, RUNNING, PENDING) if counts.get(k)
        )
        line = Text(f"[{done}/{total}] ")
        line.append(f"{status:9s}", style=status_colour(status))
        line.append(f" {name}  ({summary}; {self._timing(now, done >= total)})")
        return line

    def live_line(self, now: Snapshot) -> Text:
        running = [(k, r) for k, r in now.runs.items() if r.status == RUNNING]
        finished = sum(1 for r in now.runs.values() if r.status in FINISHED)
        shown = ", ".join(f"{k} {r.epochs_done}/{r.epochs or '?'}" for k, r in running[:LIVE_RUNS])
        more = f" +{len(running) - LIVE_RUNS} more" if len(running) > LIVE_RUNS else ""
        head = f"running {shown}{more} | " if running else ""
        return Text(
            f"{head}{finished}/{len(now.runs)} finished | {self._timing(now, False)}",
            style="dim",
        )
