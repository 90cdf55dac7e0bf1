"""Shared fixtures: tiny, fast run settings and an isolated outputs/ folder per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: Overrides that make a run take about a second on 2 cores (digits, 2 epochs, small nets).
TINY = [
    "train.epochs=2",
    "data.limit=400",
    "model.width=8",
    "model.hidden_dim=32",
    "model.latent_dim=4",
    "eval.iwae_samples=5",
    "eval.iwae_images=50",
    "eval.mi_images=100",
    "eval.grad_batches=1",
    "train.progress=off",
]


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs root; the working directory is the test's tmp dir."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "outputs"
    monkeypatch.setenv("VAESWEEP_OUTPUTS", str(root))
    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "cache"))
    return root


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


@pytest.fixture
def interrupt_cli(tmp_path: Path) -> Callable[[list[str], Callable[[], bool]], tuple[int, str]]:
    """Run ``python -m vaesweep ARGS`` in ``tmp_path``, send Ctrl-C (SIGINT to its process
    group) once ``ready()`` holds, and return (exit code, output)."""

    def run(args: list[str], ready: Callable[[], bool]) -> tuple[int, str]:
        env = {**os.environ, "VAESWEEP_OUTPUTS": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaesweep", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, "the command ended before it could be interrupted"
            assert time.monotonic() < deadline, "the command never became ready"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out

    return run
