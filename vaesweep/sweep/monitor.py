"""The sweep's progress line: runs done / total, statuses so far, elapsed time and an estimate.

A background thread polls the run directories (the same files ``report`` reads), so it works
for every launcher, including SLURM jobs on a shared filesystem. It prints one line each time
a run finishes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console

from vaesweep.sweep.index import run_status
from vaesweep.sweep.plan import SweepPlan

FINISHED = ("completed", "diverged", "failed")
STYLE = {"completed": "green", "diverged": "yellow", "failed": "red"}


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class SweepMonitor:
    def __init__(self, sweep_dir: Path, plan: SweepPlan, console: Console, poll_s: float = 0.5):
        self.sweep_dir, self.plan, self.console, self.poll_s = sweep_dir, plan, console, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vaesweep-monitor", daemon=True)
        self._seen: dict[str, str] = {}
        self._start = time.monotonic()
        self._already = 0

    def statuses(self) -> dict[str, str]:
        return {r.name: run_status(self.sweep_dir / r.name)[0] for r in self.plan.runs}

    def start(self) -> SweepMonitor:
        self._seen = {k: v for k, v in self.statuses().items() if v in FINISHED}
        self._already = len(self._seen)
        self._start = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()  # report runs that finished since the last poll

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll()

    def _poll(self) -> None:
        statuses = self.statuses()
        total = len(statuses)
        for name, status in statuses.items():
            if status in FINISHED and self._seen.get(name) != status:
                self._seen[name] = status
                # Count what has been reported so far, so runs finishing in the same poll
                # get consecutive numbers.
                done = sum(1 for s in self._seen.values() if s in FINISHED)
                self.console.print(self._line(name, status, done, total, statuses), highlight=False)

    def _line(self, name: str, status: str, done: int, total: int, statuses: dict[str, str]) -> str:
        elapsed = time.monotonic() - self._start
        new = done - self._already
        eta = elapsed / new * (total - done) if new > 0 and done < total else 0.0
        counts = ", ".join(
            f"{sum(1 for s in statuses.values() if s == k)} {k}"
            for k in (*FINISHED, "running")
            if any(s == k for s in statuses.values())
        )
        left = f", ~{_clock(eta)} left" if done < total else ""
        style = STYLE.get(status, "")
        return (
            f"[{done}/{total}] [{style}]{status:9s}[/] {name}  ({counts}; "
            f"{_clock(elapsed)} elapsed{left})"
        )
