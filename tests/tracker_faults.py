"""Helpers shared by the tracker tests: a run's metrics.csv rows, a TensorBoard writer
that fails as a full disk would, and a real MLflow server that can be killed."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaesweep.record import contract
from vaesweep.tracking.tensorboard import TensorBoardTracker

#: metrics.csv columns that measure the machine, not the training.
TIMING = {"seconds", "images_per_sec"}


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def record_numbers(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without its timing columns: what must not change with a tracker."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in metrics_rows(run_dir)]


def tensorboard_disk_full_at_epoch_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorBoard's epoch logging raises ENOSPC from epoch 2 on."""
    real = TensorBoardTracker.on_epoch

    def disk_full_at_epoch_2(self: TensorBoardTracker, rows: list[dict[str, Any]]) -> None:
        if rows[0]["epoch"] == 2:
            raise OSError(28, "No space left on device")
        real(self, rows)

    monkeypatch.setattr(TensorBoardTracker, "on_epoch", disk_full_at_epoch_2)


class MlflowServer:
    """``mlflow server`` on a free port with a SQLite store, in a session of its own (it starts
    a uvicorn child: ``kill`` ends them together, as a machine going away would)."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.uri = f"http://127.0.0.1:{port}"
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{folder / 'server.db'}"),
            *("--default-artifact-root", str(folder / "artifacts")),
        ]
        # Its background job runner (several processes) is not needed to log runs.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed by kill)
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_until_it_answers()

    def _wait_until_it_answers(self) -> None:
        while True:
            try:
                urllib.request.urlopen(self.uri + "/health", timeout=5).close()
                return
            except OSError:
                pass
            try:  # the pause between two asks; ends at once if the server has died
                code = self.proc.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            self.log.close()
            text = (Path(self.log.name)).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with code {code}:\n{text}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(folder)
    try:
        yield server
    finally:
        server.kill()
